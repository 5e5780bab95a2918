"""Run the app with uvicorn: ``lookalike serve``."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable

from lookalike.search import Index
from lookalike.service.app import create_app
from lookalike.service.settings import DEFAULT_HOST, DEFAULT_PORT, ServiceSettings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(index_path: str | os.PathLike[str], *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          settings: ServiceSettings | None = None, device: str = "cpu",
          log: Callable[[str], None] = print) -> None:
    """Open the index, build the app and serve it until interrupted."""
    import uvicorn

    index = Index.open(index_path, device=device)
    app = create_app(index, settings)
    if not is_loopback(host):
        log(f"warning: listening on {host}: other machines can reach this server")
    log(f"serving {len(index)} items from {index_path} at http://{host}:{port}/ "
        "(Ctrl-C to stop)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        index.close()

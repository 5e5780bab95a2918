"""The app factory each worker process of ``lookalike serve --workers N`` calls.

uvicorn imports ``lookalike.service.factory:app_from_env`` in every worker and calls it;
the options come from the ``LOOKALIKE_SERVE`` environment variable that ``serve`` set
(JSON: index, device, runtime, onnx, workers, settings). Each worker opens the index
folder itself (read-only use), times its runtimes, and closes the index when it stops.
"""

from __future__ import annotations

import json
import os

from fastapi import FastAPI

from lookalike.allocator import tune_malloc
from lookalike.errors import ConfigError
from lookalike.service.app import create_app
from lookalike.service.server import ENV, freeze_startup_objects, open_for_serving
from lookalike.service.settings import ServiceSettings


def worker_threads(workers: int) -> int:
    """Threads per worker: the machine's cores shared out, unless OMP_NUM_THREADS says."""
    if os.environ.get("OMP_NUM_THREADS"):
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, (os.cpu_count() or 1) // workers)


def app_from_env() -> FastAPI:
    """Build one worker's app from ``LOOKALIKE_SERVE``."""
    import torch

    raw = os.environ.get(ENV)
    if not raw:
        raise ConfigError(f"{ENV} is not set: start workers with `lookalike serve --workers N`")
    options = json.loads(raw)
    tune_malloc()
    torch.set_num_threads(worker_threads(int(options.get("workers", 1))))
    settings = ServiceSettings(**options["settings"])
    index = open_for_serving(options["index"], settings=settings, device=options["device"],
                             runtime=options["runtime"], onnx=options.get("onnx"),
                             log=lambda line: print(f"[worker {os.getpid()}] {line}",
                                                    flush=True))
    app = create_app(index, settings, on_shutdown=index.close)
    freeze_startup_objects()
    return app

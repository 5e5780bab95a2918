"""Run the app with uvicorn: ``lookalike serve``, in one process or several.

One worker: the index is opened and the app built here, then served. Several
(``workers > 1``): uvicorn starts that many processes, each of which builds its own app
from ``lookalike.service.factory:app_from_env`` (it needs an import string, not an app),
reading the options from the ``LOOKALIKE_SERVE`` environment variable. All of them open
the same index folder, only read it, and each follows its generation on every request.
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from lookalike.errors import ConfigError
from lookalike.search import Index
from lookalike.service.settings import DEFAULT_HOST, DEFAULT_PORT, ServiceSettings

ENV = "LOOKALIKE_SERVE"
"""The environment variable that passes ``serve``'s options to worker processes."""
FACTORY = "lookalike.service.factory:app_from_env"


def freeze_startup_objects() -> int:
    """Keep what the app was built from (index, model, libraries: ~220,000 objects for the
    Fashion-MNIST index) out of the garbage collector's full passes; returns how many.

    Each full pass walks every tracked object, so under load one fired about once a
    second and held every answer ~60 ms: p99 136 -> 77 ms at 50 clients (README,
    serving). ``gc.freeze`` is what the ``gc`` documentation advises for long-lived
    servers: collect once, then move the survivors to a generation never collected.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_for_serving(index_path: str | os.PathLike[str], *, settings: ServiceSettings,
                     device: str = "cpu", runtime: str = "auto",
                     onnx: str | os.PathLike[str] | None = None,
                     log: Callable[[str], None] = print) -> Index:
    """Open the index and give it the runtime ``runtime`` asks for, timed at the batch
    sizes ``settings`` will run. The ONNX model: ``onnx``, else the index's own
    (``lookalike export --index``), else exported now in memory (the folder is only read)."""
    from lookalike.export import choose_runtime

    index = Index.open(index_path, device=device)
    try:
        source = onnx if onnx is not None else (
            index.onnx_path if index.onnx_path.is_file() else None)
        choice = choose_runtime(index.model, runtime, onnx=source, device=device,
                                batches=settings.timed_batches(), name=str(index.model_dir),
                                log=log)
    except BaseException:
        index.close()
        raise
    if choice.exported is not None:
        log(f"exported the model to ONNX in memory (`lookalike export --index {index_path}` "
            "keeps it in the folder: a faster start)")
    index.use_embedder(choice.runtime)
    return index


def describe_runtime(index: Index) -> str:
    """One line: which runtime embeds, and per timed batch size which won, and by how much."""
    info = index.embedder.describe()
    if "by_batch" not in info:
        return f"embedding with {info['runtime']}"
    sizes = ", ".join(f"batch {batch}: {winner} ({info['ms'][batch]['torch']:.2f} ms torch, "
                      f"{info['ms'][batch]['onnx']:.2f} ms onnx)"
                      for batch, winner in info["by_batch"].items())
    return f"embedding with {info['runtime']} ({sizes})"


def _check_shareable(index_path: str | os.PathLike[str], workers: int) -> None:
    """Several workers need an index every process can open: a Qdrant local-mode folder
    opens in one process at a time."""
    from lookalike.search.qdrant.connection import is_url
    from lookalike.search.qdrant.manifest import Manifest, is_qdrant_folder

    if is_qdrant_folder(index_path):
        location = Manifest.read(Path(index_path)).location
        if not is_url(location):
            raise ConfigError(f"--workers {workers}: {index_path} keeps its vectors in "
                              f"Qdrant's local mode ({location}), which one process opens "
                              "at a time: serve it with --workers 1, or from a Qdrant server")


@contextlib.contextmanager
def _shared_onnx(index_path: str | os.PathLike[str], runtime: str,
                 device: str) -> Iterator[str | None]:
    """For several workers: one ONNX export for all of them, made here (in a temporary
    folder, removed afterwards) when the runtime may use ONNX and the index has none."""
    from lookalike.export.onnx import export_onnx, onnxruntime_available

    if runtime == "torch" or device != "cpu" or not onnxruntime_available():
        yield None
        return
    with Index.open(index_path, device=device) as index:
        if index.onnx_path.is_file():
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="lookalike-onnx-") as folder:
            path = Path(folder) / "model.onnx"
            try:
                export_onnx(index.model, path, name=str(index.model_dir))
            except ConfigError:
                if runtime == "onnx":
                    raise
                yield None  # auto: each worker finds out, and falls back to PyTorch
                return
            yield str(path)


def serve(index_path: str | os.PathLike[str], *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          settings: ServiceSettings | None = None, device: str = "cpu", runtime: str = "auto",
          workers: int = 1, log: Callable[[str], None] = print) -> None:
    """Open the index, build the app and serve it until interrupted (``workers``
    processes; ``runtime`` auto, torch or onnx)."""
    import uvicorn

    from lookalike.service.app import create_app

    settings = settings or ServiceSettings()
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if not is_loopback(host):
        log(f"warning: listening on {host}: other machines can reach this server")
    if workers > 1:
        _check_shareable(index_path, workers)
        with _shared_onnx(index_path, runtime, device) as onnx:
            os.environ[ENV] = json.dumps({"index": os.fspath(index_path), "device": device,
                                          "runtime": runtime, "onnx": onnx,
                                          "workers": workers, "settings": asdict(settings)})
            log(f"serving {index_path} with {workers} worker processes at "
                f"http://{host}:{port}/ (Ctrl-C to stop)")
            uvicorn.run(FACTORY, factory=True, workers=workers, host=host, port=port,
                        log_level="warning")
        return
    index = open_for_serving(index_path, settings=settings, device=device, runtime=runtime,
                             log=log)
    try:
        app = create_app(index, settings)
        freeze_startup_objects()
        log(describe_runtime(index))
        log(f"serving {len(index)} items from {index_path} at http://{host}:{port}/ "
            "(Ctrl-C to stop)")
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        index.close()

"""What runs the model on prepared queries: PyTorch or ONNX Runtime, the faster per batch size.

A runtime maps (B, C, S, S) float32 images in [0, 1], as ``query_batch`` prepares them, to
(B, D) float32 embeddings. ``choose_runtime("auto")`` times both at a few batch sizes (a
fraction of a second for a small CNN) and sends each batch to the one that was faster at
the nearest timed size; the two give the same embeddings (``onnx.TOLERANCE``), so the
choice changes speed only. Each runtime runs one forward pass at a time (a lock): two at
once on the same cores would only share them.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from lookalike.errors import ConfigError, LookalikeError
from lookalike.export.onnx import (
    INPUT,
    INSTALL,
    OUTPUT,
    ExportError,
    check_onnx,
    onnx_bytes,
    onnxruntime_available,
    sample_images,
)
from lookalike.models import Embedder

RUNTIMES = ("auto", "torch", "onnx")
"""``--runtime`` choices: auto times both and picks per batch size."""
TIMED_BATCHES = (1, 8, 32)
OnnxSource = bytes | str | os.PathLike[str]


class Runtime(Protocol):
    """(B, C, S, S) images in [0, 1] -> (B, D) float32 embeddings."""

    name: str

    def __call__(self, images: torch.Tensor) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


class TorchRuntime:
    """The model itself, under ``torch.inference_mode`` (it is moved to ``device`` and
    switched to eval mode)."""

    name = "torch"

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu") -> None:
        self.model = model.to(device).eval()
        self.device = device
        self._lock = threading.Lock()

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        with self._lock, torch.inference_mode():
            embeddings: np.ndarray = self.model(images.to(self.device)).float().cpu().numpy()
        return embeddings

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.name}


class OnnxRuntime:
    """An exported model (file or bytes) in an ONNX Runtime CPU session, with as many
    threads as torch uses (``OMP_NUM_THREADS``), so the two are timed on equal terms.

    Its threads do not spin-wait for work after a run: on cores shared with the server's
    decoding threads (and PyTorch) spinning made PyTorch's batch-128 pass 2.5x slower
    (6 ms against 2.5 ms for the small CNN, 2 cores) for 0.02 ms saved per small batch.
    """

    name = "onnx"

    def __init__(self, model: OnnxSource, threads: int | None = None,
                 name: str = "the ONNX model") -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError(f"the onnx runtime needs onnxruntime: {INSTALL}") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its warnings are not the user's to act on
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = model if isinstance(model, bytes) else os.fspath(model)
        try:
            self.session = ort.InferenceSession(source, options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types
            reason = " ".join(str(exc).split())[:200]
            raise ExportError(f"{name}: ONNX Runtime cannot load it ({reason})") from exc
        self._lock = threading.Lock()

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        array = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        with self._lock:
            out = self.session.run([OUTPUT], {INPUT: array})[0]
        return np.asarray(out, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.name}


@dataclass(frozen=True)
class Timing:
    """Median seconds per forward pass of each runtime at one batch size."""

    batch: int
    seconds: Mapping[str, float]

    @property
    def fastest(self) -> str:
        return min(self.seconds, key=lambda name: self.seconds[name])


class ChosenRuntime:
    """Each batch to the runtime that was fastest at the smallest timed size >= its size
    (the largest timed size above them all)."""

    def __init__(self, runtimes: Mapping[str, Runtime], timings: Sequence[Timing]) -> None:
        if not timings:
            raise ConfigError("choosing a runtime needs at least one timed batch size")
        self.runtimes = dict(runtimes)
        self.timings = sorted(timings, key=lambda t: t.batch)
        winners = sorted({t.fastest for t in self.timings})
        self.name = "+".join(winners)

    def runtime_for(self, batch: int) -> Runtime:
        for timing in self.timings:
            if batch <= timing.batch:
                return self.runtimes[timing.fastest]
        return self.runtimes[self.timings[-1].fastest]

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self.runtime_for(len(images))(images)

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.name,
                "by_batch": {str(t.batch): t.fastest for t in self.timings},
                "ms": {str(t.batch): {name: round(s * 1000, 3) for name, s in t.seconds.items()}
                       for t in self.timings}}


def time_forward(runtime: Runtime, images: torch.Tensor, budget_s: float = 0.15,
                 min_reps: int = 3, max_reps: int = 30) -> float:
    """Median seconds of one forward pass over ``images``, after one warm-up pass: at
    least ``min_reps`` passes, more while within ``budget_s``."""
    runtime(images)
    times: list[float] = []
    spent = 0.0
    while len(times) < min_reps or (spent < budget_s and len(times) < max_reps):
        started = time.perf_counter()
        runtime(images)
        times.append(time.perf_counter() - started)
        spent += times[-1]
    return statistics.median(times)


def onnx_runtime(model: Embedder, source: OnnxSource | None = None, name: str = "the model",
                 log: Callable[[str], None] = print) -> tuple[OnnxRuntime, bytes | None]:
    """ONNX Runtime for ``model``: ``source`` (an exported file or bytes) when it holds this
    model, else an export made now. Returns the runtime and the new export's bytes (None
    when ``source`` was used), which the caller may keep."""
    if source is not None and (isinstance(source, bytes) or Path(source).is_file()):
        where = "the given ONNX model" if isinstance(source, bytes) else os.fspath(source)
        try:
            check_onnx(model, source, name=where)
            return OnnxRuntime(source, name=where), None
        except ExportError as exc:
            log(f"{exc}; exporting {name} again, in memory")
    data = onnx_bytes(model, name)
    check_onnx(model, data, name=f"the ONNX export of {name}")
    return OnnxRuntime(data, name=f"the ONNX export of {name}"), data


@dataclass
class Choice:
    """The runtime chosen, and the ONNX export made on the way (None if none was)."""

    runtime: Runtime
    exported: bytes | None = None


def choose_runtime(model: Embedder, mode: str = "auto", *, onnx: OnnxSource | None = None,
                   device: str | torch.device = "cpu",
                   batches: Sequence[int] = TIMED_BATCHES, name: str = "the model",
                   log: Callable[[str], None] = print) -> Choice:
    """The runtime ``mode`` asks for: ``torch``; ``onnx`` (``onnx`` file or bytes, or an
    export made now; errors raise); or ``auto``: both timed at ``batches`` and the faster
    used per batch size, PyTorch alone where ONNX Runtime is missing, cannot run the model
    (a user's backbone that does not export) or ``device`` is not the CPU."""
    if mode not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, got {mode!r}")
    torch_runtime = TorchRuntime(model, device)
    if mode == "torch":
        return Choice(torch_runtime)
    on_cpu = torch.device(device).type == "cpu"
    if mode == "onnx":
        if not on_cpu:
            raise ConfigError(f"the onnx runtime runs on the CPU, not on {device}")
        runtime, exported = onnx_runtime(model, onnx, name, log)
        return Choice(runtime, exported)
    if not on_cpu or not onnxruntime_available():
        return Choice(torch_runtime)
    try:
        runtime, exported = onnx_runtime(model, onnx, name, log)
    except LookalikeError as exc:
        log(f"using PyTorch: {exc}")
        return Choice(torch_runtime)
    candidates: dict[str, Runtime] = {"torch": torch_runtime, "onnx": runtime}
    timings = []
    for batch in sorted(set(batches)):
        images = sample_images(model, batch)
        timings.append(Timing(batch, {key: time_forward(candidate, images)
                                      for key, candidate in candidates.items()}))
    return Choice(ChosenRuntime(candidates, timings), exported)


class RuntimeModule(nn.Module):
    """A runtime as a module, for code that runs an ``nn.Module`` (``models.embed``): it
    holds no parameters, so moving it or switching it to eval mode changes nothing."""

    def __init__(self, runtime: Runtime, embedding_dim: int) -> None:
        super().__init__()
        self.runtime = runtime
        self.embedding_dim = embedding_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.runtime(images))

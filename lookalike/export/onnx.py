"""Export an Embedder to ONNX: the whole module, preprocessing included, batch axis dynamic.

The exported graph takes what ``Index.embed`` feeds the model, (B, C, S, S) float32 images
in [0, 1] at the model's ``input_size`` with its ``in_channels``, and runs the same channel
conversion and mean/std normalisation as ``Embedder.preprocess`` before the backbone and
head. So ONNX Runtime and PyTorch embed the same prepared query to the same vector (checked
on export: within ``TOLERANCE``).

Needs the ``onnx`` extra (``pip install 'lookalike[onnx]'``: onnx and onnxscript for
torch's exporter, onnxruntime to run and check the result); each is imported only here.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import warnings
from collections.abc import Iterator

import numpy as np
import torch

from lookalike.errors import ConfigError, LookalikeError
from lookalike.files import write_bytes
from lookalike.models import Embedder

ONNX_FILE = "model.onnx"
"""Where an index keeps its model in ONNX: next to the PyTorch copy, in ``INDEX/model/``."""
INPUT, OUTPUT = "images", "embeddings"
OPSET = 18
TOLERANCE = 1e-5
"""Largest difference allowed between ONNX Runtime's and PyTorch's embeddings."""
INSTALL = "pip install 'lookalike[onnx]'"


class ExportError(LookalikeError):
    """A model that could not be exported to ONNX, or whose export gives other embeddings."""


def sample_images(model: Embedder, batch: int = 4, seed: int = 0) -> torch.Tensor:
    """(batch, C, S, S) seeded random images in [0, 1], shaped as the model's queries."""
    generator = torch.Generator().manual_seed(seed)
    size, channels = model.config.input_size, model.config.in_channels
    return torch.rand(batch, channels, size, size, generator=generator)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch's exporter logs and warns about optional packages (torchvision) and
    deprecations it does not act on: keep them off the command line."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def onnx_bytes(model: Embedder, name: str = "the model") -> bytes:
    """The serialised ONNX model of ``model`` (exported on the CPU, in eval mode), with a
    dynamic batch axis; ``name`` (its checkpoint) names it in errors."""
    for package in ("onnx", "onnxscript"):
        try:
            __import__(package)
        except ImportError:
            raise ConfigError(f"exporting to ONNX needs the {package} package: "
                              f"{INSTALL}") from None
    cpu_model = copy.deepcopy(model).cpu().eval()
    example = sample_images(cpu_model, batch=2)  # 2: a batch of 1 would fix the axis to 1
    try:
        with _quiet_exporter(), torch.inference_mode(False):
            program = torch.onnx.export(
                cpu_model, (example,), None, dynamo=True, input_names=[INPUT],
                output_names=[OUTPUT], opset_version=OPSET, verbose=False,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    except Exception as exc:  # torch raises many kinds; the user needs one line
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ExportError(f"{name}: ONNX export failed ({type(exc).__name__}: "
                          f"{reason})") from exc
    if program is None:  # only without dynamo
        raise ExportError(f"{name}: ONNX export gave no model")
    data: bytes = program.model_proto.SerializeToString()
    return data


def check_onnx(model: Embedder, data: bytes | str | os.PathLike[str],
               name: str = "the ONNX model") -> float:
    """Largest difference between ONNX Runtime's and ``model``'s embeddings of seeded
    images (batch 1 and 5); raises ``ExportError`` above ``TOLERANCE``."""
    from lookalike.export.runtime import OnnxRuntime, TorchRuntime

    runtime = OnnxRuntime(data, name=name)
    reference = TorchRuntime(copy.deepcopy(model).cpu().eval())
    worst = 0.0
    for batch in (1, 5):
        images = sample_images(model, batch, seed=batch)
        expected, got = reference(images), runtime(images)
        if got.shape != expected.shape:
            raise ExportError(f"{name} gives embeddings of shape {got.shape}, the model "
                              f"{expected.shape}: export it again")
        worst = max(worst, float(np.abs(got - expected).max()))
    if not worst <= TOLERANCE:
        raise ExportError(f"{name} does not match its model (largest difference {worst:.2g}, "
                          f"more than {TOLERANCE:g}): export it again")
    return worst


def export_onnx(model: Embedder, out: str | os.PathLike[str], name: str = "the model",
                check: bool = True) -> float | None:
    """Write ``model`` as ONNX to ``out`` (atomically), first checked against PyTorch when
    onnxruntime is installed (and ``check``): returns the largest difference between
    their embeddings, None when unchecked."""
    data = onnx_bytes(model, name)
    difference = None
    if check and onnxruntime_available():
        difference = check_onnx(model, data, name=f"the ONNX export of {name}")
    write_bytes(out, data)
    return difference


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True

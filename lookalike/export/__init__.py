"""The model outside PyTorch: ONNX export, and the runtimes that embed queries.

``export_onnx(model, "model.onnx")`` writes a checked ONNX file; ``choose_runtime(model,
"auto")`` gives whichever of PyTorch and ONNX Runtime embeds faster, per batch size.
"""

from __future__ import annotations

from lookalike.export.onnx import ONNX_FILE, ExportError, export_onnx, onnx_bytes
from lookalike.export.runtime import (
    RUNTIMES,
    Choice,
    OnnxRuntime,
    Runtime,
    TorchRuntime,
    choose_runtime,
)

__all__ = ["ONNX_FILE", "RUNTIMES", "Choice", "ExportError", "OnnxRuntime", "Runtime",
           "TorchRuntime", "choose_runtime", "export_onnx", "onnx_bytes"]

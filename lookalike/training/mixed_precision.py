"""Mixed precision (``--amp``): float16 on CUDA, bfloat16 on a CPU with bfloat16 units.

On a CPU with AMX tiles or AVX-512 BF16 (Intel Cooper Lake and later, AMD Zen 4 and
later), oneDNN runs bfloat16 convolutions and matrix products on those units; on this
build machine (Xeon, AMX) a demo training step (conv-fc, batch 130, with channels_last
and fused AdamW) takes 18 ms in bfloat16 against 60 ms in plain float32 (README).
Without such units bfloat16 is emulated and slower than float32, so ``--amp`` is then a
no-op and the log says so. Losses are computed in float32 (training/fit.py casts the
embeddings back), and evaluation always embeds in float32.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch


@functools.cache  # asked at every training step; the CPU does not change
def cpu_has_bfloat16_units() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX tiles or AVX-512 BF16)."""
    cpu = torch.cpu
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private in torch 2.x
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype ``--amp`` means on ``device``; None where it runs float32."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_bfloat16_units():
        return torch.bfloat16
    return None


def compute_precision(device: torch.device, enabled: bool) -> str:
    """The forward passes' float type by name: ``float32``, ``bfloat16`` or ``float16``."""
    return str(autocast_dtype(device, enabled) or torch.float32).removeprefix("torch.")


def autocast_context(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` in the dtype ``autocast_dtype`` picks, else a no-op."""
    dtype = autocast_dtype(device, enabled)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def describe_precision(device: torch.device, enabled: bool) -> str:
    """One log line: the precision the forward passes run in, and why."""
    if autocast_dtype(device, enabled) is not None:
        return f"mixed precision: {compute_precision(device, enabled)} autocast on {device.type}"
    if enabled:
        return (f"--amp ignored: this {device.type} has no native bfloat16 units "
                f"(AMX or AVX-512 BF16), so float32 is faster")
    return "precision: float32 (--amp for bfloat16 on a CPU with AMX / AVX-512 BF16)"

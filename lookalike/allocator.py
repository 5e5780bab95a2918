"""Keep freed tensor memory in the process instead of handing it back to the system.

glibc's malloc serves every block above its mmap threshold (at most 32 MiB, and it starts at
128 KiB) with a fresh ``mmap`` and returns it with ``munmap`` when freed. A convolutional
network on the CPU allocates and frees activations of several MiB at every layer of every
step, so each step maps new pages and the kernel zero-fills them on first touch: on the
2-core build machine EfficientNet-Lite0 spent more time in the kernel than in arithmetic
(inference at 128 px: 114 images/s, user 6.8 s against system 10.3 s; with the thresholds
below 400 images/s and no system time; ``bench/allocator.py`` measures it, docs/design.md 7).
Raising the mmap and trim thresholds to 1 GiB makes malloc reuse freed blocks, the behaviour
PyTorch's own CUDA caching allocator gives GPU memory. Resident memory then stays at the
run's peak instead of shrinking between steps.

The tuning is glibc-only (Linux); elsewhere, or with ``LOOKALIKE_MALLOC_TUNING=0``, nothing
changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt() parameters, from glibc's malloc.h
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
THRESHOLD = 1 << 30  # bytes: blocks up to this size are reused, not unmapped; fits a C int
TOP_PAD = 64 << 20  # bytes: grow the heap in steps of this much
ENV = "LOOKALIKE_MALLOC_TUNING"

_tuned: bool | None = None


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they are set.

    Idempotent and cheap, so every entry point (CLI, ``train``, the server) calls it.
    """
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if os.environ.get(ENV, "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt, Windows)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _tuned = all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, THRESHOLD), (M_TRIM_THRESHOLD, THRESHOLD), (M_TOP_PAD, TOP_PAD)))
    return _tuned

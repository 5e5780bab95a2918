"""Denormal floats flushed to zero on the CPU, for every thread torch computes on.

As a run converges, many gradients and optimiser moments fall below float32's smallest
normal number (about 1e-38): Adam's first moment of a weight whose gradient has become
0 shrinks by 0.9 a step and is denormal after about 800 steps. x86 CPUs compute on
denormals in microcode, many times slower, and the demo's epochs slowed as it trained
(12 s for the first, 17 s for the last). The CPU's flush-to-zero and denormals-are-zero
modes (``torch.set_flush_denormal``) treat them as 0, which no model can tell apart from
0; the demo's epochs then hold their speed (README, "The demo").

The mode is a per-thread register, and a new thread copies its creator's, so it must be
set before torch starts its OpenMP threads (at the first parallel operation): the CLI
sets it first thing. A later call still covers the calling thread and any thread created
after it.
"""

from __future__ import annotations

import torch

_flushed: bool | None = None


def flush_denormals() -> bool:
    """Flush denormals to zero from now on; True where the CPU has the mode (x86 with SSE3).

    Idempotent and cheap, so every entry point (CLI, ``train``) calls it.
    """
    global _flushed
    if _flushed is None:
        _flushed = bool(torch.set_flush_denormal(True))
    return _flushed

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


def flush_denormals() -> bool:
    """Flush denormals to zero on the calling thread from now on (and on the threads it
    starts); True where the CPU has the mode (x86 with SSE3).

    Setting a register is cheap and the answer depends on the thread that asks, so nothing
    is cached: every entry point (CLI, ``train``) calls it, from whichever thread it runs.
    """
    return bool(torch.set_flush_denormal(True))

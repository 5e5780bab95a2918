"""Peak memory of a benchmark process, read from Linux's /proc (shared by bench scripts)."""

from __future__ import annotations

import contextlib
import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB.

    Linux's VmHWM, which ``reset_peak_rss`` can reset; ``resource.getrusage`` is the
    fallback, but in a subprocess it also counts the parent's RSS at fork (the kernel keeps
    the larger), which hides a child smaller than its parent.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Start VmHWM again from the current RSS, so the next peak is of what follows."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")

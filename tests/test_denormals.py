"""Denormals flushed to zero (lookalike/denormals.py): on every thread torch computes on,
when the CLI sets the mode before torch starts its threads."""

import platform
import subprocess
import sys

import pytest

X86 = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686"}

# 4M elements: torch splits the product over its threads. Before anything else runs, the
# CLI's main() must flush; a later parallel product must then be zero on every thread.
CHECK = """
import torch
torch.set_num_threads(2)
from lookalike.cli import main
status = main(["evaluate", "--checkpoint", "no-such-run"])  # fails cleanly, after the flush
tiny = torch.full((4_000_000,), 1e-40)
print(status, float(((tiny * 1.0) != 0).float().mean()))
"""

LATE = """
import torch
torch.set_num_threads(2)
tiny = torch.full((4_000_000,), 1e-40)
print(float(((tiny * 1.0) != 0).float().mean()), end=" ")  # starts torch's threads
from lookalike.denormals import flush_denormals
print(flush_denormals(), flush_denormals(), float(((tiny[:8] * 1.0) != 0).float().mean()))
"""


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not X86, reason="flush-to-zero is an x86 (SSE3) mode")
def test_the_cli_flushes_denormals_on_all_of_torchs_threads() -> None:
    status, nonzero = run(CHECK).split()
    assert status == "1" and float(nonzero) == 0.0


@pytest.mark.skipif(not X86, reason="flush-to-zero is an x86 (SSE3) mode")
def test_a_late_call_still_covers_the_calling_thread_and_is_idempotent() -> None:
    kept, first, second, nonzero = run(LATE).split()
    assert float(kept) == 1.0  # torch's default keeps denormals
    assert first == second == "True" and float(nonzero) == 0.0  # 8 elements: this thread

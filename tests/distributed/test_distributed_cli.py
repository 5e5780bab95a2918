"""``torchrun -m lookalike train`` as a user runs it: 2 gloo processes on this CPU, a resume
with another process count, the run folder written once, and a killed process that stops
the run with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lookalike.cli import main
from tests.conftest import TINY_TRAIN

TORCHRUN = Path(sys.executable).parent / "torchrun"
FLAGS = [*TINY_TRAIN[2:], "--seed", "2", "--lr-schedule", "none", "-K", "8"]  # not "--epochs 1"


def torchrun(processes: int, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TORCHRUN), "--standalone", f"--nproc-per-node={processes}",
                           "-m", "lookalike", *argv], capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")
def test_torchrun_trains_and_any_process_count_resumes(tiny_folder: Path,
                                                       tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = torchrun(2, "train", "--data", str(tiny_folder), "--out", str(run),
                     "--epochs", "2", *FLAGS)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.count("epoch 2/2") == 1  # one process logs
    assert main(["train", "--resume", str(run), "--epochs", "3", *FLAGS]) == 0  # one process
    stored = json.loads((run / "config.json").read_text())
    launches = [(launch["world_size"], launch["backend"], launch["start_epoch"])
                for launch in stored["launches"]]
    assert launches == [(2, "gloo", 1), (1, "none", 3)]
    assert stored["launches"][0]["per_rank_batch"] * 2 == stored["launches"][0]["global_batch"]
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    straight = tmp_path / "straight"
    assert main(["train", "--data", str(tiny_folder), "--out", str(straight), "--epochs", "3",
                 *FLAGS]) == 0
    alone = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_loss"] for r in log] == pytest.approx([r["train_loss"] for r in alone],
                                                           rel=2e-3)


def process_of_rank(parent: int, rank: int) -> int | None:
    """The pid of torchrun ``parent``'s worker with RANK=``rank`` (Linux /proc), if running."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = next(int(line.split()[1]) for line in status.splitlines()
                    if line.startswith("PPid:"))
        if ppid == parent and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.skipif(not TORCHRUN.exists() or not Path("/proc/self/environ").exists(),
                    reason="needs torchrun and Linux /proc")
def test_a_killed_rank_stops_the_run_with_one_line_and_it_resumes(tiny_folder: Path,
                                                                   tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [str(TORCHRUN), "--standalone", "--nproc-per-node=2", "-m", "lookalike",
               "train", "--data", str(tiny_folder), "--out", str(run), "--epochs", "400",
               *FLAGS]
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        metrics = run / "metrics.jsonl"
        deadline = time.monotonic() + 240
        while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
            assert launcher.poll() is None and time.monotonic() < deadline, "no epoch committed"
            time.sleep(0.05)
        victim = process_of_rank(launcher.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0  # the run stopped, every process of it
    ours = [line for line in stderr.splitlines() if line.startswith("lookalike:")]
    assert len(ours) == 1, stderr[-3000:]  # rank 0's one line (rank 1 died without a word)
    assert f"lookalike train --resume {run}" in ours[0]
    committed = len((run / "metrics.jsonl").read_text().splitlines())
    assert main(["train", "--resume", str(run), "--epochs", str(committed + 1), *FLAGS]) == 0
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, committed + 2))

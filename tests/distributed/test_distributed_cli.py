"""``torchrun -m lookalike train`` as a user runs it: 2 gloo processes on this CPU, a resume
with another process count, and the run folder written once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lookalike.cli import main
from tests.conftest import TINY_TRAIN

TORCHRUN = Path(sys.executable).parent / "torchrun"
FLAGS = [*TINY_TRAIN[2:], "--seed", "2", "--lr-schedule", "none"]  # without "--epochs 1"


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

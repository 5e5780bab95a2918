"""``--mining hybrid --hybrid-batches classes`` trains from the command line and resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lookalike.cli import main
from lookalike.training.trainer import resume, train

from ..conftest import TINY_TRAIN
from .conftest import QUIET, InterruptAt, TrainingInterrupted, tiny_config


def test_trains_from_the_command_line(tiny_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    flags = ["--mining", "hybrid", "--hybrid-batches", "classes", "--warmup-epochs", "0",
             "--hard-positives", "2", "--hard-negatives", "2"]
    assert main(["train", "--data", str(tiny_folder), "--out", str(run), *TINY_TRAIN,
                 *flags]) == 0
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert record["refresh_seconds"] > 0.0 and record["train_loss"] == record["train_loss"]
    assert json.loads((run / "config.json").read_text())["config"]["pools"][
        "hybrid_batches"] == "classes"


def test_refreshes_its_neighbourhoods_and_resumes_exactly(tiny_folder: Path,
                                                          tmp_path: Path) -> None:
    config = tiny_config(tiny_folder, epochs=3, mining="hybrid", hybrid_batches="classes",
                         warmup_epochs=1, refresh_every=1, hard_positives=2, hard_negatives=2,
                         lr_schedule="none")
    train(config, tmp_path / "straight", **QUIET)
    lines = (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    refresh = [json.loads(line)["refresh_seconds"] for line in lines]
    assert refresh[0] == 0.0 and refresh[1] > 0.0 and refresh[2] > 0.0

    with pytest.raises(TrainingInterrupted):  # third epoch, third batch: after a refresh
        train(config, tmp_path / "stopped", extra_callbacks=[InterruptAt(11)], **QUIET)
    resume(tmp_path / "stopped", **QUIET)
    straight = load_file(str(tmp_path / "straight" / "last" / "model.safetensors"))
    stopped = load_file(str(tmp_path / "stopped" / "last" / "model.safetensors"))
    assert straight.keys() == stopped.keys()
    for key in straight:
        torch.testing.assert_close(straight[key], stopped[key], rtol=0, atol=1e-6, msg=key)

"""``lookalike train --loss contrastive`` end to end on a tiny self-made folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lookalike.cli import main

from .conftest import TINY_TRAIN, fails


def test_contrastive_trains_one_epoch_and_writes_a_checkpoint(tiny_folder: Path,
                                                              tmp_path: Path) -> None:
    run = tmp_path / "run"
    code = main(["train", "--data", str(tiny_folder), "--out", str(run), *TINY_TRAIN,
                 "--loss", "contrastive", "--pair-ratio", "1:3", "--contrastive-margin", "0.7"])
    assert code == 0
    assert (run / "best" / "model.safetensors").is_file()
    assert (run / "last" / "model.json").is_file()
    config = json.loads((run / "config.json").read_text())["config"]["objective"]
    assert (config["loss"], config["pair_ratio"], config["contrastive_margin"]) == (
        "contrastive", "1:3", 0.7)
    (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert record["train_loss"] > 0 and 0.0 <= record["fraction_positive"] <= 1.0
    assert record["mean_positive_distance"] < record["mean_negative_distance"] + 1.0


@pytest.mark.parametrize(("extra", "expected"), [
    (["--pair-ratio", "3"], "--pair-ratio"),
    (["--pair-ratio", "0:2"], "--pair-ratio"),
    (["--mining", "hybrid"], "contrastive"),
    (["--mining", "offline-hard"], "contrastive"),
    (["--contrastive-margin", "0"], "--contrastive-margin"),
])
def test_bad_contrastive_options_are_one_line_errors(
        extra: list[str], expected: str, tiny_folder: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    error = fails(capsys, ["train", "--data", str(tiny_folder), "--out", str(run),
                           *TINY_TRAIN, "--loss", "contrastive", *extra])
    assert expected in error
    assert not (run / "last").exists()

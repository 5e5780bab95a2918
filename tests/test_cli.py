"""The command line, run in-process with main(argv) on tiny self-made data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lookalike.cli import main

from .conftest import TINY_TRAIN, fails


def test_help_teaches_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--mining" in out and "examples:" in out and "--resume" in out


def test_train_then_evaluate(tiny_folder: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_folder), "--out", str(run), *TINY_TRAIN]) == 0
    assert (run / "best" / "model.json").is_file()
    metrics_file = tmp_path / "m.json"
    code = main(["evaluate", "--checkpoint", str(run / "best"), "--data", str(tiny_folder),
                 "--split", "all", "--json", str(metrics_file), "--quiet"])
    assert code == 0
    metrics = json.loads(metrics_file.read_text())
    assert 0.0 <= metrics["map_at_r"] <= 1.0
    assert "MAP@R" in capsys.readouterr().out


def test_unknown_dataset_is_one_line_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    error = fails(capsys, ["train", "--data", str(tmp_path / "nowhere"), "--out",
                           str(tmp_path / "r"), *TINY_TRAIN])
    assert "nowhere" in error


def test_bad_checkpoint_is_one_line_error(tmp_path: Path, tiny_folder: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "ckpt"
    bogus.mkdir()
    (bogus / "model.json").write_text("{not json")
    code = main(["evaluate", "--checkpoint", str(bogus), "--data", str(tiny_folder), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ckpt" in err[0]


def test_verbose_shows_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--verbose", "train", "--data", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "r"), *TINY_TRAIN])
    assert code == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_quick_on_fashion_mnist(fashion_mnist_available: None, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    report = tmp_path / "demo" / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["test"]["precision_at_1"] > 0.5  # 2 short epochs already beat chance (0.1)
    assert (report / "training_curves.png").stat().st_size > 10_000
    assert (report / "retrieval_grid.png").stat().st_size > 10_000
    last_lines = capsys.readouterr().out.strip().splitlines()[-3:]
    assert last_lines[0].startswith("test MAP@R") and last_lines[1].startswith("test P@1")
    assert last_lines[2].startswith(f"test MAP@10 {metrics['test']['map_at_10']:.4f}")

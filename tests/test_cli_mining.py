"""``lookalike mine`` and ``lookalike analyze`` end to end on tiny self-made folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lookalike.cli import main
from lookalike.mining.analysis import load_analysis
from lookalike.mining.pools import Pools

from .conftest import write_class_folder

TRAIN = ["--epochs", "1", "-P", "3", "-K", "4", "--batches-per-epoch", "2", "--embedding-dim",
         "8", "--val-fraction", "0.25", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def checkpoint(tiny_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny lookalike checkpoint to mine with (fast, unlike the pretrained model)."""
    run = tmp_path_factory.mktemp("mining-run") / "run"
    assert main(["train", "--data", str(tiny_folder), "--out", str(run), *TRAIN]) == 0
    return run / "best"


def mine(tiny_folder: Path, checkpoint: Path, out: Path, *extra: str) -> int:
    return main(["mine", "--data", str(tiny_folder), "--split", "all", "--mining-model",
                 str(checkpoint), "--k-pos", "3", "--k-neg", "4", "--out", str(out), "--quiet",
                 *extra])


def test_mine_writes_pools_that_respect_labels(tiny_folder: Path, checkpoint: Path,
                                               tmp_path: Path) -> None:
    out = tmp_path / "pools.npz"
    assert mine(tiny_folder, checkpoint, out) == 0
    pools = Pools.load(out)
    labels = np.asarray(pools.extra["labels"])
    assert len(pools) == len(labels) == 48
    assert pools.positive_index.shape == (48, 3) and pools.negative_index.shape == (48, 4)
    anchors = np.arange(48)[:, None]
    assert (labels[pools.positive_index] == labels[anchors]).all()
    assert (labels[pools.negative_index] != labels[anchors]).all()
    assert (pools.positive_index != anchors).all()
    # Hard positives are the farthest first, hard negatives the nearest first.
    assert (np.diff(pools.positive_distance, axis=1) <= 1e-6).all()
    assert (np.diff(pools.negative_distance, axis=1) >= -1e-6).all()


def test_bands_skip_the_hardest(tiny_folder: Path, checkpoint: Path, tmp_path: Path) -> None:
    plain, banded = tmp_path / "plain.npz", tmp_path / "banded.npz"
    assert mine(tiny_folder, checkpoint, plain) == 0
    assert mine(tiny_folder, checkpoint, banded, "--positive-band", "0.2",
                "--negative-band", "0.1") == 0
    p, b = Pools.load(plain), Pools.load(banded)
    # 15 positives per anchor: skip floor(0.2 * 15) = 3, the whole plain pool.
    assert not np.intersect1d(p.positive_index[0], b.positive_index[0]).size
    assert (b.positive_distance[:, 0] <= p.positive_distance[:, -1] + 1e-6).all()
    assert (b.negative_distance[:, 0] >= p.negative_distance[:, 0] - 1e-6).all()


def test_analyze_draws_and_summarises(tiny_folder: Path, checkpoint: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    pools_file, out = tmp_path / "pools.npz", tmp_path / "analysis"
    assert mine(tiny_folder, checkpoint, pools_file) == 0
    assert main(["analyze", "--pools", str(pools_file), "--out", str(out), "--quiet"]) == 0
    png = (out / "distances.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    summary = json.loads((out / "summary.json").read_text())
    for key in ("positive_peak", "negative_peak", "overlap", "hard_anchor_share"):
        assert isinstance(summary[key], float)
    assert 0.0 <= summary["overlap"] <= 1.0 and 0.0 <= summary["hard_anchor_share"] <= 1.0
    assert summary["positive_peak"] < summary["negative_peak"]  # the classes are learnable
    pools = Pools.load(pools_file)
    assert summary["pooled_negative_mean"] == pytest.approx(
        float(np.mean(pools.negative_distance)), abs=1e-3)
    assert "distances.png" in capsys.readouterr().out


def test_analyze_examples_mark_pooled_items(tiny_folder: Path, checkpoint: Path,
                                            tmp_path: Path) -> None:
    pools_file = tmp_path / "pools.npz"
    assert mine(tiny_folder, checkpoint, pools_file) == 0
    pools = Pools.load(pools_file)
    analysis = load_analysis(pools, str(pools_file))
    assert analysis.examples
    for example in analysis.examples:
        anchor = example["anchor"]
        assert len(example["positive"]) == 15 and len(example["negative"]) == 32
        # The pooled positives are the farthest of the anchor's own positive distances.
        farthest = sorted(example["positive"], reverse=True)[:3]
        np.testing.assert_allclose(example["pooled_positive"], farthest, atol=2e-3)
        np.testing.assert_allclose(example["pooled_positive"],
                                   pools.positive_distance[anchor], atol=2e-3)


def test_analyze_without_source_is_one_line_error(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "--out", str(tmp_path / "a"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--pools" in err[0]


def test_analyze_pools_without_analysis_names_file(tmp_path: Path, tiny_folder: Path,
                                                   checkpoint: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pools_file = tmp_path / "pools.npz"
    assert mine(tiny_folder, checkpoint, pools_file) == 0
    pools = Pools.load(pools_file)
    pools.extra.pop("analysis")
    stripped = tmp_path / "stripped.npz"
    pools.save(stripped)
    assert main(["analyze", "--pools", str(stripped), "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stripped.npz" in err[0]


def test_mine_one_class_only_is_one_line_error(tmp_path: Path, checkpoint: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_class_folder(tmp_path / "one", classes=1, per_class=6)
    assert mine(folder, checkpoint, tmp_path / "p.npz") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "class" in err[0]
    assert not (tmp_path / "p.npz").exists()


def test_mine_with_missing_checkpoint_names_it(tiny_folder: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-run" / "best"
    assert mine(tiny_folder, missing, tmp_path / "p.npz") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-run" in err[0]


@pytest.mark.slow
def test_mine_with_pretrained_efficientnet(tiny_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    out = tmp_path / "pools.npz"
    code = main(["mine", "--data", str(tiny_folder), "--split", "all", "--mining-model",
                 "efficientnet-lite0", "--input-size", "32", "--out", str(out), "--quiet"])
    assert code == 0
    pools = Pools.load(out)
    labels = np.asarray(pools.extra["labels"])
    assert (labels[pools.positive_index] == labels[:, None]).all()

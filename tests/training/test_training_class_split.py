"""--split classes: train on the seen classes, validate on the unseen ones, evaluate after."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lookalike.cli import main
from lookalike.errors import ConfigError
from lookalike.training.config import TrainConfig
from lookalike.training.data import prepare_training_data

from ..benchmark_layouts import write_cub
from ..conftest import write_class_folder

TINY = ["--epochs", "1", "-P", "3", "-K", "4", "--batches-per-epoch", "2", "--embedding-dim", "8",
        "--threads", "1", "--quiet"]


def config(data: Path, **changes: object) -> TrainConfig:
    base = TrainConfig.from_options(source=str(data), split="classes", classes_per_batch=3,
                                    items_per_class=4, embedding_dim=8)
    return base.with_options(**changes).validate()


def classes_of(dataset) -> set[str]:
    collection = dataset.collection
    return {collection.class_names[c] for c in np.unique(collection.labels)}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 classes x 6 images: classes 0-2 are seen, 3-5 unseen."""
    return write_class_folder(tmp_path_factory.mktemp("six") / "images", classes=6, per_class=6)


def test_trains_on_the_first_half_and_validates_on_the_rest(folder: Path) -> None:
    data = prepare_training_data(config(folder))
    assert classes_of(data.train) == {"class_0", "class_1", "class_2"}
    assert classes_of(data.val) == {"class_3", "class_4", "class_5"}
    assert len(data.train) == len(data.val) == 18  # every item of its classes
    assert data.class_names == [f"class_{c}" for c in range(6)]  # labels stay consistent
    limited = prepare_training_data(config(folder, train_limit=10, val_limit=7))
    assert len(limited.train) == 10 and len(limited.val) == 7
    assert classes_of(limited.val) <= {"class_3", "class_4", "class_5"}


def test_benchmark_layout_uses_its_standard_split(tmp_path: Path) -> None:
    data = prepare_training_data(config(write_cub(tmp_path, per_class=4)))
    assert set(data.train.collection.labels) == {0, 1, 2}
    assert set(data.val.collection.labels) == {3, 4, 5}
    assert data.class_names[0] == "001.Black_footed_Albatross"


def test_val_split_conflicts_with_class_split(folder: Path) -> None:
    with pytest.raises(ConfigError, match="--split classes validates on the unseen classes; "
                                          "drop --val-split test"):
        prepare_training_data(config(folder, val_split="test"))


@pytest.mark.parametrize("layout", ["folder", "cub"])
def test_cli_trains_on_seen_and_evaluates_on_unseen(layout: str, folder: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    data = folder if layout == "folder" else write_cub(tmp_path / "birds", per_class=6).parent
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--split", "classes", "--out", str(run),
                 *TINY]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and 0.0 <= records[0]["val_map_at_r"] <= 1.0
    stored = TrainConfig.from_dict(json.loads((run / "config.json").read_text())["config"])
    assert stored.data.split == "classes"
    prepared = prepare_training_data(stored)
    assert not classes_of(prepared.train) & classes_of(prepared.val)
    code = main(["evaluate", "--checkpoint", str(run / "best"), "--data", str(data),
                 "--split", "unseen", "--json", str(tmp_path / "m.json"), "--quiet"])
    assert code == 0
    assert 0.0 <= json.loads((tmp_path / "m.json").read_text())["map_at_r"] <= 1.0
    assert "MAP@R" in capsys.readouterr().out

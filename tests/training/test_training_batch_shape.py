"""A plan's P x K and epoch length follow the training labels unless given; the run logs them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from lookalike.cli import main
from lookalike.errors import ConfigError
from lookalike.sampling import PKSampler
from lookalike.sampling.injecting import HardPositiveBatchSampler
from lookalike.training.config import TrainConfig
from lookalike.training.strategy import build_plan

from ..conftest import TINY_TRAIN


class PoolArrays(NamedTuple):
    positive_index: np.ndarray
    negative_index: np.ndarray


def test_fashion_mnist_shaped_labels_keep_the_old_batches() -> None:
    labels = np.repeat(np.arange(10), 6000)
    for mining in ("semi-hard", "hybrid", "offline"):
        plan = build_plan(TrainConfig.from_options(mining=mining).validate(), labels)
        assert plan.shape is not None
        assert (plan.shape.classes_per_batch, plan.shape.items_per_class) == (8, 16)
        assert plan.batches_per_epoch == 60000 // 128  # as with the fixed P = 8, K = 16
    sampler = build_plan(TrainConfig().validate(), labels).strategy_for(0).sampler
    assert isinstance(sampler, PKSampler)
    assert (sampler.classes_per_batch, sampler.items_per_class) == (8, 16)


def test_many_small_classes_fill_the_batch_and_the_epoch_covers_them() -> None:
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(60), 4))
    plan = build_plan(TrainConfig().validate(), labels)
    assert plan.shape is not None
    assert (plan.shape.classes_per_batch, plan.shape.items_per_class) == (32, 4)
    strategy = plan.strategy_for(0)
    drawn = {i for batch in strategy.batches(0) for i in batch}
    assert drawn == set(range(240)), "an epoch draws every item"


def test_explicit_p_and_k_win() -> None:
    labels = np.repeat(np.arange(60), 4)
    config = TrainConfig.from_options(classes_per_batch=6, items_per_class=3,
                                      batches_per_epoch=5).validate()
    plan = build_plan(config, labels)
    assert plan.shape is not None and plan.shape.auto == (False, False, False)
    batches = list(plan.strategy_for(0).batches(0))
    assert len(batches) == 5 and {len(b) for b in batches} == {18}


def test_hybrid_keeps_two_anchors_per_small_class() -> None:
    labels = np.repeat(np.arange(40), 4)
    config = TrainConfig.from_options(mining="hybrid", items_per_class=4).validate()
    sampler = build_plan(config, labels).pooled_sampler()
    assert isinstance(sampler, HardPositiveBatchSampler)
    assert sampler.items_per_class == 2  # anchors per class, not 4 // 3 = 1
    n = len(labels)
    positives = np.array([[(i // 4) * 4 + (i + 1) % 4] for i in range(n)])
    sampler.set_pools(PoolArrays(positives, (positives + 4) % n))
    for batch in sampler:
        anchors = np.asarray(batch[: 2 * 32])
        assert set(np.bincount(labels[anchors]).tolist()) <= {0, 2}
        assert len(batch) <= 32 * 2 * 3  # anchors, their positives and negatives


def test_hybrid_classes_is_the_class_neighbour_sampler() -> None:
    from lookalike.sampling.class_neighbours import ClassNeighbourBatchSampler

    config = TrainConfig.from_options(mining="hybrid", hybrid_batches="classes").validate()
    sampler = build_plan(config, np.repeat(np.arange(40), 4)).pooled_sampler()
    assert isinstance(sampler, ClassNeighbourBatchSampler)
    assert (sampler.classes_per_batch, sampler.items_per_class) == (32, 4)


def test_unknown_hybrid_batches_is_refused() -> None:
    with pytest.raises(ConfigError, match="--hybrid-batches"):
        TrainConfig.from_options(hybrid_batches="pairs").validate()


def test_train_logs_the_shape_and_saves_auto(tiny_folder: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    flags = list(TINY_TRAIN)
    for flag in ("-P", "-K", "--batches-per-epoch"):
        at = flags.index(flag)
        del flags[at:at + 2]
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_folder), "--out", str(run), *flags]) == 0
    out = capsys.readouterr().out
    # 3 classes of about 12 training items: K = their median, P = all 3, one batch covers them
    assert re.search(r"batches: P=3 classes x K=1\d items \(median class size 1\d\), "
                     r"1 batch cover 36 training items in 3 classes", out), out
    saved = json.loads((run / "config.json").read_text())
    objective = saved["config"]["objective"]
    assert objective["classes_per_batch"] is None and objective["items_per_class"] is None

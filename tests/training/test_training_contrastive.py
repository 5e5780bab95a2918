"""--loss contrastive in the training strategy and config: the loss, its batches, its errors."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lookalike.errors import ConfigError
from lookalike.losses import ContrastiveLoss
from lookalike.sampling import PKSampler
from lookalike.training.config import TrainConfig
from lookalike.training.strategy import build_plan
from lookalike.training.trainer import train

from .conftest import tiny_config


def fake_dataset(classes: int = 5, per_class: int = 10) -> SimpleNamespace:
    """A stand-in dataset: only its labels matter to the plan."""
    labels = np.repeat(np.arange(classes), per_class)
    return SimpleNamespace(collection=SimpleNamespace(labels=labels))


@pytest.mark.parametrize("mining", ["semi-hard", "batch-all", "batch-hard", "offline"])
def test_contrastive_strategy_is_pairs_over_pk_batches(mining: str) -> None:
    config = TrainConfig.from_options(loss="contrastive", mining=mining, pair_ratio="2:5",
                         contrastive_margin=0.8, distance="cosine", classes_per_batch=3,
                         items_per_class=4, batches_per_epoch=4).validate()
    dataset = fake_dataset()
    strategy = build_plan(config, dataset.collection.labels).strategy_for(0)
    loss = strategy.loss
    assert isinstance(loss, ContrastiveLoss) and isinstance(strategy.sampler, PKSampler)
    assert (loss.neg_margin, loss.pos_margin, loss.distance, loss.ratio) == (
        0.8, 0.0, "cosine", (2, 5))
    batches = list(strategy.batches(0))
    assert len(batches) == strategy.batches_per_epoch == 4
    for batch in batches:
        labels = torch.as_tensor(dataset.collection.labels[np.asarray(batch)])
        assert len(batch) == 12 and len(torch.unique(labels)) == 3
        out = loss(torch.randn(12, 4), labels)
        assert out.stats.num_triplets == 3 * 6 + 3 * 6 * 5 // 2  # 18 positives, 45 negatives


@pytest.mark.parametrize("mining", ["hybrid", "offline-hard"])
def test_contrastive_with_pooled_mining_is_refused(mining: str) -> None:
    with pytest.raises(ConfigError, match=f"--mining {mining}.*--loss contrastive"):
        TrainConfig.from_options(loss="contrastive", mining=mining).validate()
    TrainConfig.from_options(loss="triplet", mining=mining).validate()  # still fine for triplets


def test_contrastive_training_is_reproducible(tiny_folder: Path, tmp_path: Path) -> None:
    # Random negatives come from torch's global generator, which train() seeds.
    config = tiny_config(tiny_folder, loss="contrastive", epochs=1, batches_per_epoch=3)
    quiet = {"show_progress": False, "log": lambda _: None}
    first = train(config, tmp_path / "a", **quiet)
    second = train(config, tmp_path / "b", **quiet)
    assert first.best_map_at_r == second.best_map_at_r
    logs = [(tmp_path / run / "metrics.jsonl").read_text().splitlines() for run in "ab"]
    timeless = [[{k: v for k, v in json.loads(line).items() if "second" not in k}
                 for line in lines] for lines in logs]
    assert timeless[0] == timeless[1]

"""Shared helpers of the training tests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lookalike.training.config import TrainConfig


def tiny_config(data: Path, **changes: object) -> TrainConfig:
    """A short run on ``data`` (2 epochs of 4 batches of 3 x 4 items, 8-d), with ``changes``."""
    base = TrainConfig(data=str(data), epochs=2, classes_per_batch=3, items_per_class=4,
                       batches_per_epoch=4, val_fraction=0.25, embedding_dim=8, threads=1)
    return replace(base, **changes)

"""Shared helpers of the training tests."""

from __future__ import annotations

from pathlib import Path

from lookalike.errors import TrainingInterrupted
from lookalike.training.config import TrainConfig
from lookalike.training.fit import Callback, StepResult, TrainingState


def tiny_config(data: Path, **changes: object) -> TrainConfig:
    """A short run on ``data`` (2 epochs of 4 batches of 3 x 4 items, 8-d), with ``changes``."""
    base = TrainConfig.from_options(source=str(data), epochs=2, classes_per_batch=3,
                                    items_per_class=4, batches_per_epoch=4, val_fraction=0.25,
                                    embedding_dim=8, threads=1)
    return base.with_options(**changes)


class InterruptAt(Callback):
    """Press Ctrl-C after the ``batch``-th trained batch of the run (counted from 1)."""

    def __init__(self, batch: int) -> None:
        self.batch, self.seen = batch, 0

    def on_batch_end(self, state: TrainingState, step: StepResult) -> None:
        self.seen += 1
        if self.seen == self.batch:
            raise KeyboardInterrupt


QUIET = {"show_progress": False, "log": lambda _: None}
__all__ = ["QUIET", "InterruptAt", "TrainingInterrupted", "tiny_config"]

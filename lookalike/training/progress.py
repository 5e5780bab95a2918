"""EpochProgress: the running sums of one epoch, and the exact position within it.

Saved on interrupt, so a resumed epoch skips the batches already done and reports the same
means as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from lookalike.types import LossStats


@dataclass
class EpochProgress:
    """Batches done and the sums behind the epoch's log line."""

    batches_done: int = 0
    images: int = 0
    loss_sum: float = 0.0
    fraction_positive_sum: float = 0.0
    positive_distance_sum: float = 0.0
    negative_distance_sum: float = 0.0
    distance_batches: int = 0
    seconds: float = 0.0

    def add(self, loss: float, stats: LossStats, batch_images: int) -> None:
        """Count one trained batch: its loss value and what its loss saw."""
        self.batches_done += 1
        self.images += batch_images
        self.loss_sum += loss
        self.fraction_positive_sum += stats.fraction_positive
        if stats.num_triplets > 0 and math.isfinite(stats.mean_negative_distance):
            self.positive_distance_sum += stats.mean_positive_distance
            self.negative_distance_sum += stats.mean_negative_distance
            self.distance_batches += 1

    def summary(self) -> dict[str, float]:
        """Per-epoch means for the metrics log."""
        batches = max(self.batches_done, 1)
        with_distances = max(self.distance_batches, 1)
        return {
            "train_loss": self.loss_sum / batches,
            "fraction_positive": self.fraction_positive_sum / batches,
            "mean_positive_distance": self.positive_distance_sum / with_distances,
            "mean_negative_distance": self.negative_distance_sum / with_distances,
            "train_images": self.images,
            "train_seconds": self.seconds,
            "images_per_second": self.images / self.seconds if self.seconds > 0 else 0.0,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

"""A mining strategy = the loss that selects triplets + the sampler that builds batches.

Online strategies (batch-all, batch-hard, semi-hard) draw P x K class-balanced batches and
let the loss choose triplets inside each batch. Offline draws a fixed list of random
(anchor, positive, negative) triplets once, before training, and feeds them in order.
Every epoch has the same number of images, so strategies compare at equal cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np
import torch

from lookalike.losses import TripletLoss
from lookalike.mining.offline import OfflineTripletSampler, random_triplets
from lookalike.sampling import PKSampler
from lookalike.training.config import TrainConfig


@dataclass
class Strategy:
    """What the trainer needs from a strategy: a loss, batches per epoch, an epoch hook."""

    loss: torch.nn.Module
    sampler: PKSampler | OfflineTripletSampler
    batches_per_epoch: int

    def batches(self, epoch: int) -> Iterable[Sequence[int]]:
        """The epoch's batches, reseeded with seed + epoch so a resumed epoch is identical."""
        self.sampler.set_epoch(epoch)
        batches: Iterator[Sequence[int]] = iter(self.sampler)
        return islice(batches, self.batches_per_epoch)

    def start_epoch(self, epoch: int, *, model: torch.nn.Module, device: torch.device) -> float:
        """Hook for strategies that refresh state with the current model; returns seconds."""
        return 0.0


def build_strategy(config: TrainConfig, labels: np.ndarray) -> Strategy:
    """The loss and sampler named by ``config.mining``."""
    batches_per_epoch = config.batches_per_epoch or max(1, len(labels) // config.batch_size)
    if config.mining == "offline":
        triplets = random_triplets(labels, per_anchor=1, seed=config.seed)
        sampler: PKSampler | OfflineTripletSampler = OfflineTripletSampler(
            triplets, triplets_per_batch=max(1, config.batch_size // 3), seed=config.seed
        )
    else:
        sampler = PKSampler(labels, config.classes_per_batch, config.items_per_class,
                            seed=config.seed, batches_per_epoch=batches_per_epoch)
    loss = TripletLoss(selection=config.mining, margin=config.margin, soft=config.soft_margin,
                       distance=config.distance)
    return Strategy(loss=loss, sampler=sampler,
                    batches_per_epoch=min(batches_per_epoch, len(sampler)))

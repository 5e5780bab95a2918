"""Offline-hard batches: one (anchor, pooled hard positive, pooled hard negative) triplet
per anchor, drawn once from the mined pools and then served as a fixed triplet list."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from lookalike.errors import ConfigError
from lookalike.mining.offline import OfflineTripletSampler
from lookalike.sampling.injecting import HardExamplePools, draw_from_pools
from lookalike.types import Triplets


def pool_triplets(pools: HardExamplePools, seed: int) -> Triplets:
    """One (anchor, pooled positive, pooled negative) triplet per anchor with both pools."""
    generator = torch.Generator().manual_seed(seed)
    positive = draw_from_pools(pools.positive_index, generator)
    negative = draw_from_pools(pools.negative_index, generator)
    anchor = np.flatnonzero((positive >= 0) & (negative >= 0))
    as_tensor = torch.from_numpy
    return Triplets(as_tensor(anchor), as_tensor(positive[anchor]), as_tensor(negative[anchor]))


class PoolTripletSampler:
    """An :class:`OfflineTripletSampler` over the triplets of the latest pools.

    Args:
        triplets_per_batch: triplets per batch (a batch is 3x as many items).
        seed: draws the triplets from the pools, and the epoch order as seed + epoch.
    """

    def __init__(self, triplets_per_batch: int, seed: int = 0) -> None:
        self.triplets_per_batch, self.seed, self.epoch = triplets_per_batch, seed, 0
        self._sampler: OfflineTripletSampler | None = None

    def set_pools(self, pools: HardExamplePools) -> None:
        self._sampler = OfflineTripletSampler(pool_triplets(pools, self.seed),
                                              self.triplets_per_batch, seed=self.seed)

    def _current(self) -> OfflineTripletSampler:
        if self._sampler is None:
            raise ConfigError("PoolTripletSampler has no pools yet: call set_pools first")
        return self._sampler

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._current())

    def __iter__(self) -> Iterator[list[int]]:
        sampler = self._current()
        sampler.set_epoch(self.epoch)
        return iter(sampler)

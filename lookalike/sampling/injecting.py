"""Batches with each anchor's hard positive (and hard negative) injected: the hybrid sampler.

Online batch-hard mining can only pick the hardest positive *that happens to share the
batch*; in a P x K batch of a 6 000-item class that is rarely a truly hard one. Here the
anchors are drawn P x K as usual, then each anchor brings one item drawn from its offline
hard-positive pool (and, optionally, one from its hard-negative pool), so the triplets that
batch-hard or batch-all form inside the batch include the hard pairs found over the whole
dataset. The batch keeps real class labels: two anchors of one class stay positives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from lookalike.errors import ConfigError
from lookalike.sampling.pk import ClassQueues, PKSampler


class HardExamplePools(Protocol):
    """Per anchor, dataset indices of its hard positives and negatives (-1 padded), as
    :class:`lookalike.mining.pools.Pools` holds them."""

    @property
    def positive_index(self) -> np.ndarray: ...

    @property
    def negative_index(self) -> np.ndarray: ...


def draw_from_pools(pools: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """One random valid entry per row of ``pools`` (-1 marks empty slots); -1 if none.

    Args:
        pools: (A, k) int64 dataset indices, -1 padded.
    Returns:
        (A,) int64.
    """
    valid = pools >= 0  # (A, k)
    counts = valid.sum(axis=1)  # (A,)
    uniform = torch.rand(len(pools), generator=generator, dtype=torch.float64).numpy()
    slot = np.minimum((uniform * counts).astype(np.int64), np.maximum(counts - 1, 0))
    # The slot-th valid column: valid entries are packed to the left by the miner, but do not
    # rely on it; rank the valid columns and pick the one whose rank equals ``slot``.
    rank = np.cumsum(valid, axis=1) - 1  # (A, k)
    column = np.argmax(valid & (rank == slot[:, None]), axis=1)
    picked = pools[np.arange(len(pools)), column]
    return np.where(counts > 0, picked, -1)


def anchors_per_class(items_per_class: int, inject_negatives: bool, small_classes: bool) -> int:
    """Anchors per class that share K slots with their injected positive (and negative):
    ``K // (2 + inject_negatives)``, but at least 2 when classes are small.

    With small classes one anchor per class would leave each class a single positive pair
    and no anchor to be the other's positive (K = 4 gives 4 // 3 = 1). Two anchors keep
    that, at the cost of a batch above P x K: up to ``P x 2 x (2 + inject_negatives)``
    items (6 P instead of 4 P for K = 4), fewer where injected items repeat anchors.

    Args:
        small_classes: a P x K draw takes half of a typical class or more
            (``BatchShape.small_classes``).
    """
    shared = items_per_class // (2 + inject_negatives)
    return max(2, shared) if small_classes else shared


class HardPositiveBatchSampler(PKSampler):
    """P classes x K anchors, plus a draw from each anchor's hard-positive (negative) pool.

    A batch holds up to ``P * K * (1 + 1 + inject_negatives)`` items, laid out as
    [anchors, their injected positives, their injected negatives]; injected items that are
    already in the batch are not repeated. Pools index the same dataset as ``labels``; the
    pool-refresh callback hands new ones over between epochs with :meth:`set_pools`.

    Args:
        labels: (N,) labels of the training items.
        pools: the mined pools (``positive_index`` (N, k_pos) and ``negative_index``
            (N, k_neg) dataset indices, -1 padded), or None until the first refresh.
        classes_per_batch, anchors_per_class: P and K of the anchors.
        inject_negatives: also inject one hard negative per anchor.
        seed, batches_per_epoch: as for :class:`PKSampler`.
    """

    def __init__(
        self,
        labels: Sequence[object] | np.ndarray | torch.Tensor,
        pools: HardExamplePools | None,
        classes_per_batch: int,
        anchors_per_class: int,
        *,
        inject_negatives: bool = False,
        seed: int = 0,
        batches_per_epoch: int | None = None,
    ) -> None:
        super().__init__(labels, classes_per_batch, anchors_per_class, seed=seed,
                         batches_per_epoch=batches_per_epoch)
        self.inject_negatives = inject_negatives
        self.positive_pool: np.ndarray | None = None
        self.negative_pool: np.ndarray | None = None
        if pools is not None:
            self.set_pools(pools)

    def set_pools(self, pools: HardExamplePools) -> None:
        """Use new pools from the next batch on (after a refresh with the current model)."""
        positive_pool, negative_pool = pools.positive_index, pools.negative_index
        n = len(self.labels)
        if positive_pool.ndim != 2 or len(positive_pool) != n:
            raise ConfigError(f"positive pool must have shape ({n}, k), got {positive_pool.shape}")
        if self.inject_negatives and (negative_pool is None or len(negative_pool) != n):
            raise ConfigError(f"inject_negatives needs a negative pool of shape ({n}, k)")
        self.positive_pool = np.asarray(positive_pool, dtype=np.int64)
        self.negative_pool = None if negative_pool is None else np.asarray(negative_pool, np.int64)

    def draw_batch(self, queues: ClassQueues) -> list[int]:
        if self.positive_pool is None:
            raise ConfigError("HardPositiveBatchSampler has no pools yet: call set_pools first")
        anchors = np.asarray(super().draw_batch(queues), dtype=np.int64)
        parts = [anchors, draw_from_pools(self.positive_pool[anchors], queues.generator)]
        if self.inject_negatives and self.negative_pool is not None:
            parts.append(draw_from_pools(self.negative_pool[anchors], queues.generator))
        batch = np.concatenate(parts)
        batch = batch[batch >= 0]
        _, first = np.unique(batch, return_index=True)  # drop repeats, keep the order
        return [int(i) for i in batch[np.sort(first)]]

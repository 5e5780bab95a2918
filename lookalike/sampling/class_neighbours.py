"""Hybrid batches of neighbouring classes: a seed class and the classes that look like it.

On many classes a random P x K batch holds unrelated classes whose negatives are easy, and a
lone injected hard negative cannot be an anchor (docs/design.md 2.4). This sampler builds
each batch from whole confusable classes instead: a seed class, then its nearest classes in
the class graph that the mined pools give (``lookalike.mining.class_graph``), K items each,
so the in-batch selector finds hard negatives that are full anchors too. The seed class's
anchors bring their pooled hard positives among its K items. Seeds come from a shuffled
pass over the classes, so every class seeds once per pass; when a seed has too few
neighbours left (or no pooled negatives at all), the next seed of the pass adds its own,
so classes without neighbours are filled in at random. The pool-refresh callback hands new
pools over with :meth:`set_pools`, which rebuilds the graph from the current model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lookalike.errors import ConfigError
from lookalike.mining.class_graph import ClassGraph, class_graph
from lookalike.sampling.injecting import HardExamplePools, draw_from_pools
from lookalike.sampling.pk import ClassQueues, PKSampler


def unique_in_order(values: np.ndarray) -> np.ndarray:
    """``values`` without repeats, each kept at its first occurrence."""
    _, first = np.unique(values, return_index=True)
    kept: np.ndarray = values[np.sort(first)]
    return kept


class ClassNeighbourBatchSampler(PKSampler):
    """P neighbouring classes x K items: a seed class and its nearest classes by the pools.

    A batch is laid out class by class, each seed followed by its neighbours; each class
    gives min(K, n_c) distinct items, so a batch holds at most P x K items. A seed's first
    ceil(K / 2) items are anchors whose draws from their hard-positive pools fill the class's other
    slots (topped up from the class's own queue where the pools are empty or repeat).

    Args:
        labels: (N,) labels of the training items (the pools index the same items).
        classes_per_batch, items_per_class: P and K.
        rank_weighted: weigh the class graph's pooled negatives by 1 / (1 + rank).
        seed, batches_per_epoch: as for :class:`PKSampler`.
    """

    def __init__(
        self,
        labels: Sequence[object] | np.ndarray | torch.Tensor,
        classes_per_batch: int,
        items_per_class: int,
        *,
        rank_weighted: bool = False,
        seed: int = 0,
        batches_per_epoch: int | None = None,
    ) -> None:
        super().__init__(labels, classes_per_batch, items_per_class, seed=seed,
                         batches_per_epoch=batches_per_epoch)
        self.rank_weighted = rank_weighted
        self.item_class = np.full(len(self.labels), -1, dtype=np.int64)  # (N,) class position
        for position, items in enumerate(self.items_by_class):
            self.item_class[items] = position
        self.positive_pool: np.ndarray | None = None
        self.graph: ClassGraph | None = None

    def set_pools(self, pools: HardExamplePools) -> None:
        """Rebuild the class graph from new pools; used from the next batch on."""
        n = len(self.labels)
        for name in ("positive_index", "negative_index"):
            pool = getattr(pools, name)
            if pool is None or pool.ndim != 2 or len(pool) != n:
                shape = None if pool is None else pool.shape
                raise ConfigError(f"{name.split('_')[0]} pool must have shape ({n}, k), "
                                  f"got {shape}")
        self.positive_pool = np.asarray(pools.positive_index, dtype=np.int64)
        width = min(self.classes_per_batch - 1, len(self.classes) - 1)
        self.graph = class_graph(self.item_class, pools.negative_index, len(self.classes),
                                 width, rank_weighted=self.rank_weighted)

    def batch_classes(self, queues: ClassQueues) -> tuple[np.ndarray, np.ndarray]:
        """(P,) distinct class positions and (P,) whether each is a seed: seeds from the
        class queue, each followed by its nearest neighbours not yet in the batch."""
        assert self.graph is not None
        taken: list[int] = []
        seeds: set[int] = set()
        while len(taken) < self.classes_per_batch:
            seed = int(queues.classes(1)[0])
            seeds.add(seed)
            candidates = np.concatenate([[seed], self.graph.neighbours[seed]])
            fresh = candidates[(candidates >= 0) & ~np.isin(candidates, taken)]
            if not len(fresh):  # a seed with all its neighbours here already
                fresh = self.unseen_class(queues, taken)
            taken += fresh[: self.classes_per_batch - len(taken)].tolist()
        positions = np.asarray(taken, dtype=np.int64)
        return positions, np.isin(positions, list(seeds))

    def unseen_class(self, queues: ClassQueues, taken: list[int]) -> np.ndarray:
        """(1,) a random class not in ``taken``, for a seed whose neighbours are all taken."""
        rest = np.setdiff1d(np.arange(len(self.classes)), taken)
        pick = int(torch.randint(len(rest), (1,), generator=queues.generator).item())
        return rest[pick:pick + 1]

    def seed_items(self, queues: ClassQueues, position: int) -> np.ndarray:
        """min(K, n_c) items of a seed class: anchors, their pooled hard positives, then
        more of the class's queue."""
        assert self.positive_pool is not None
        queued = queues.items(position, self.items_per_class)
        anchors = queued[: -(-self.items_per_class // 2)]
        positives = draw_from_pools(self.positive_pool[anchors], queues.generator)
        positives = positives[(positives >= 0) & (self.item_class[np.maximum(positives, 0)]
                                                  == position)]
        items = unique_in_order(np.concatenate([anchors, positives, queued]))
        return items[: len(queued)]

    def draw_batch(self, queues: ClassQueues) -> list[int]:
        if self.graph is None:
            raise ConfigError("ClassNeighbourBatchSampler has no pools yet: call set_pools first")
        positions, seeds = self.batch_classes(queues)
        parts = [self.seed_items(queues, int(p)) if seed
                 else queues.items(int(p), self.items_per_class)
                 for p, seed in zip(positions, seeds, strict=True)]
        return [int(i) for i in np.concatenate(parts)]

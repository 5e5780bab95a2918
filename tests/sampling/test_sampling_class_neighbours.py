"""Class-neighbour hybrid batches: a seed class, its nearest classes by the pools, K items each."""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

import numpy as np
import pytest

from lookalike.errors import ConfigError
from lookalike.sampling.class_neighbours import ClassNeighbourBatchSampler


class PoolArrays(NamedTuple):
    positive_index: np.ndarray
    negative_index: np.ndarray


def ring_pools(classes: int, per_class: int, k: int = 3) -> tuple[np.ndarray, PoolArrays]:
    """Classes on a ring: every item's hard negatives lie in the next class (c + 1) and,
    fewer, in the one after; its hard positives are the other items of its class."""
    labels = np.repeat(np.arange(classes), per_class)
    n = len(labels)
    items = np.arange(n).reshape(classes, per_class)
    positives = np.full((n, k), -1, dtype=np.int64)
    negatives = np.full((n, k), -1, dtype=np.int64)
    for i in range(n):
        c, slot = divmod(i, per_class)
        same = np.delete(items[c], slot)[:k]
        positives[i, : len(same)] = same
        negatives[i] = [items[(c + 1) % classes, slot], items[(c + 1) % classes, 0],
                        items[(c + 2) % classes, slot]]
    return labels, PoolArrays(positives, negatives)


def test_batches_are_a_seed_and_its_nearest_classes_k_items_each() -> None:
    labels, pools = ring_pools(classes=12, per_class=4)
    sampler = ClassNeighbourBatchSampler(labels, 3, 4, seed=0, batches_per_epoch=12)
    sampler.set_pools(pools)
    assert sampler.graph is not None
    assert sampler.graph.neighbours[5].tolist() == [6, 7]  # c + 1 (2 per item), then c + 2
    seeds = []
    for batch in sampler:
        classes = list(dict.fromkeys(labels[batch].tolist()))  # in batch order
        seed = classes[0]
        seeds.append(seed)
        assert classes == [seed, (seed + 1) % 12, (seed + 2) % 12]
        assert len(batch) == len(set(batch)) == 12
        assert set(Counter(labels[batch].tolist()).values()) == {4}
    assert sorted(seeds) == list(range(12)), "every class seeds once per pass"


def test_seed_anchors_bring_their_pooled_hard_positives() -> None:
    labels = np.repeat(np.arange(6), 10)
    n = len(labels)
    positives = np.full((n, 2), -1, dtype=np.int64)
    for i in range(n):  # each item's only hard positive: the next item of its class
        c, slot = divmod(i, 10)
        positives[i, 0] = c * 10 + (slot + 1) % 10
    negatives = np.array([[(i + 10) % n, -1] for i in range(n)])
    sampler = ClassNeighbourBatchSampler(labels, 2, 4, seed=1, batches_per_epoch=8)
    sampler.set_pools(PoolArrays(positives, negatives))
    for batch in sampler:
        seed_items = batch[:4]
        assert labels[seed_items].tolist() == [labels[batch[0]]] * 4
        for anchor in seed_items[:2]:  # ceil(K / 2) anchors first
            assert positives[anchor, 0] in seed_items


def test_classes_without_neighbours_are_filled_from_the_seed_pass() -> None:
    labels, pools = ring_pools(classes=8, per_class=3)
    lonely = pools.negative_index.copy()
    lonely[labels == 2] = -1  # class 2 has no pooled negatives
    sampler = ClassNeighbourBatchSampler(labels, 4, 3, seed=0, batches_per_epoch=16)
    sampler.set_pools(PoolArrays(pools.positive_index, lonely))
    for batch in sampler:
        classes = Counter(labels[batch].tolist())
        assert len(classes) == 4 and set(classes.values()) == {3}
        assert len(batch) == len(set(batch))


def test_deterministic_per_seed_and_epoch_and_refreshable() -> None:
    labels, pools = ring_pools(classes=10, per_class=5)

    def epoch_batches(seed: int, epoch: int, p: PoolArrays = pools) -> list[list[int]]:
        sampler = ClassNeighbourBatchSampler(labels, 3, 4, seed=seed, batches_per_epoch=6)
        sampler.set_pools(p)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert epoch_batches(7, 2) == epoch_batches(7, 2)
    assert epoch_batches(7, 2) != epoch_batches(7, 3)
    assert epoch_batches(7, 2) != epoch_batches(8, 2)
    reversed_ring = PoolArrays(pools.positive_index, pools.negative_index[::-1].copy())
    assert epoch_batches(7, 2, reversed_ring) != epoch_batches(7, 2)


def test_needs_pools_of_the_right_shape() -> None:
    labels, pools = ring_pools(classes=4, per_class=3)
    sampler = ClassNeighbourBatchSampler(labels, 2, 2)
    with pytest.raises(ConfigError, match="no pools yet"):
        next(iter(sampler))
    with pytest.raises(ConfigError, match="negative pool"):
        sampler.set_pools(PoolArrays(pools.positive_index, pools.negative_index[:5]))

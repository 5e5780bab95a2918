"""The hybrid sampler injects pooled hard positives / negatives into P x K anchor batches."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch

from lookalike.errors import ConfigError
from lookalike.sampling.injecting import HardPositiveBatchSampler, draw_from_pools


class PoolArrays(NamedTuple):
    """The two arrays of a pools object, as the sampler reads them."""

    positive_index: np.ndarray
    negative_index: np.ndarray | None


def make_pools(labels: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random but valid pools: positives share the label (never self), negatives do not."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    positives = np.full((n, k), -1, dtype=np.int64)
    negatives = np.full((n, k), -1, dtype=np.int64)
    for i in range(n):
        same = np.flatnonzero((labels == labels[i]) & (np.arange(n) != i))
        other = np.flatnonzero(labels != labels[i])
        positives[i, : min(k, len(same))] = rng.choice(same, min(k, len(same)), replace=False)
        negatives[i] = rng.choice(other, k, replace=False)
    return positives, negatives


def test_draw_from_pools_picks_valid_entries_only() -> None:
    pools = np.array([[5, 6, -1], [-1, -1, -1], [-1, 9, -1]])
    generator = torch.Generator().manual_seed(0)
    seen = {tuple(draw_from_pools(pools, generator)) for _ in range(200)}
    assert {row[0] for row in seen} == {5, 6}
    assert {row[1] for row in seen} == {-1}
    assert {row[2] for row in seen} == {9}


@pytest.mark.parametrize("inject_negatives", [False, True])
def test_every_anchor_brings_a_member_of_its_pools(inject_negatives: bool) -> None:
    labels = np.repeat(np.arange(6), 20)
    positives, negatives = make_pools(labels, k=3)
    sampler = HardPositiveBatchSampler(labels, PoolArrays(positives, negatives),
                                       classes_per_batch=3,
                                       anchors_per_class=4, inject_negatives=inject_negatives)
    for batch in sampler:
        assert len(batch) == len(set(batch)), "no item twice in a batch"
        anchors = batch[:12]  # P x K anchors come first, grouped by class
        members = set(batch)
        for anchor in anchors:
            assert members & set(positives[anchor]), "the anchor's hard positive was injected"
            if inject_negatives:
                assert members & set(negatives[anchor])
        assert len(batch) <= 12 * (3 if inject_negatives else 2)
        if not inject_negatives:
            assert set(labels[batch]) == set(labels[anchors]), "positives add no new class"


def test_deterministic_per_seed_and_epoch_and_refreshable() -> None:
    labels = np.repeat(np.arange(4), 10)
    positives, _ = make_pools(labels, k=2)
    first = HardPositiveBatchSampler(labels, PoolArrays(positives, None), 2, 3, seed=7)
    second = HardPositiveBatchSampler(labels, PoolArrays(positives, None), 2, 3, seed=7)
    assert list(first) == list(second)
    second.set_epoch(1)
    assert list(first) != list(second)
    fresh, _ = make_pools(labels, k=2, seed=1)
    first.set_pools(PoolArrays(fresh, None))
    for batch in first:
        assert set(batch[:6]) | {int(x) for a in batch[:6] for x in fresh[a]} >= set(batch)


def test_pool_shape_mismatch_is_a_clear_error() -> None:
    labels = np.repeat(np.arange(3), 5)
    with pytest.raises(ConfigError, match="positive pool"):
        HardPositiveBatchSampler(labels, PoolArrays(np.zeros((4, 2), dtype=np.int64), None),
                                 2, 2)
    with pytest.raises(ConfigError, match="negative pool"):
        HardPositiveBatchSampler(labels, PoolArrays(np.zeros((15, 2), dtype=np.int64), None),
                                 2, 2,
                                 inject_negatives=True)

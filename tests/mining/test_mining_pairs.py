"""select_pairs: every positive pair, negatives in the ratio, valid, seeded, hard = closest."""

from __future__ import annotations

import itertools

import pytest
import torch

from lookalike.distances import pairwise_distance
from lookalike.errors import ConfigError, DataError
from lookalike.mining import Pairs, select_pairs


def pk_labels(p: int, k: int, seed: int = 0) -> torch.Tensor:
    """P classes x K items, shuffled, with label values that are not 0..P-1."""
    labels = torch.arange(p).repeat_interleave(k) * 7 - 3
    return labels[torch.randperm(p * k, generator=torch.Generator().manual_seed(seed))]


def oracle_pairs(labels: torch.Tensor) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """Every i < j pair by a plain loop: (positives, negatives)."""
    same, other = set(), set()
    for i, j in itertools.combinations(range(len(labels)), 2):
        (same if labels[i] == labels[j] else other).add((i, j))
    return same, other


def as_set(pairs: Pairs, same: bool) -> set[tuple[int, int]]:
    keep = pairs.same == same
    return set(zip(pairs.first[keep].tolist(), pairs.second[keep].tolist(), strict=True))


@pytest.mark.parametrize("ratio", [(1, 1), (1, 3), (2, 3), (1, 4)])
def test_ratio_is_exact_when_negatives_suffice(ratio):
    labels = pk_labels(4, 4)  # 24 positive pairs, 96 negative pairs
    pairs = select_pairs(labels, ratio, torch.Generator().manual_seed(0))
    n_pos, n_neg = int(pairs.same.sum()), int((~pairs.same).sum())
    assert n_pos == 4 * 6
    assert n_neg == n_pos * ratio[1] // ratio[0]


def test_negatives_are_capped_by_what_exists():
    labels = pk_labels(2, 8)  # 56 positive pairs but only 64 negative pairs (1:3 wants 168)
    pairs = select_pairs(labels, (1, 3), torch.Generator().manual_seed(0))
    positives, negatives = oracle_pairs(labels)
    assert as_set(pairs, True) == positives and as_set(pairs, False) == negatives
    assert len(pairs.first) == len(positives) + len(negatives)  # each pair once


@pytest.mark.parametrize("hard", [False, True], ids=["random", "hard"])
@pytest.mark.parametrize("sizes", [[4] * 4, [1, 5, 2, 1, 9, 3]], ids=["pk", "uneven"])
def test_pairs_are_valid(sizes, hard):
    labels = torch.tensor(sizes).repeat_interleave(torch.tensor(sizes))  # label = class size
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]
    emb = torch.randn(len(labels), 3, generator=torch.Generator().manual_seed(2))
    pairs = select_pairs(labels, (1, 3), torch.Generator().manual_seed(3),
                         distances=pairwise_distance(emb), hard=hard)
    assert pairs.first.dtype == pairs.second.dtype == torch.long and pairs.same.dtype == torch.bool
    assert (pairs.first < pairs.second).all()  # no self pairs, each unordered pair once
    assert torch.equal(pairs.same, labels[pairs.first] == labels[pairs.second])
    positives, negatives = oracle_pairs(labels)
    assert as_set(pairs, True) == positives  # every positive pair is kept
    chosen = as_set(pairs, False)
    assert chosen <= negatives and len(chosen) == int((~pairs.same).sum())  # no repeats
    assert len(chosen) == min(3 * len(positives), len(negatives))
    assert pairs.same[: len(positives)].all()  # positives first


def test_same_seed_same_pairs_other_seed_other_pairs():
    labels = pk_labels(8, 4)
    draw = lambda seed: select_pairs(labels, (1, 3), torch.Generator().manual_seed(seed))  # noqa: E731
    first, again, other = draw(5), draw(5), draw(6)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    assert as_set(first, False) != as_set(other, False)
    assert as_set(first, True) == as_set(other, True)


def test_global_generator_is_reproducible_under_manual_seed():
    labels = pk_labels(8, 4)
    torch.manual_seed(9)
    first = select_pairs(labels)
    torch.manual_seed(9)
    assert all(torch.equal(a, b) for a, b in zip(first, select_pairs(labels), strict=True))


def test_hard_takes_the_closest_negatives():
    labels = pk_labels(4, 4)
    emb = torch.randn(16, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    dist = pairwise_distance(emb)
    pairs = select_pairs(labels, (1, 2), distances=dist, hard=True)
    negative = ~pairs.same
    chosen = dist[pairs.first[negative], pairs.second[negative]]
    # The oracle: all negative pairs sorted by distance, the first 2 * 24 of them.
    _, negatives = oracle_pairs(labels)
    ranked = sorted(negatives, key=lambda ij: dist[ij].item())[: 2 * 24]
    assert as_set(pairs, False) == set(ranked)
    assert torch.equal(chosen, chosen.sort().values)  # closest first
    assert chosen.max() < min(dist[ij].item() for ij in negatives - set(ranked))


def test_hard_ties_go_to_the_lowest_pair_index():
    labels = torch.tensor([0, 0, 1, 1])
    pairs = select_pairs(labels, (1, 1), distances=torch.zeros(4, 4), hard=True)
    # Positives (0, 1), (2, 3); negatives in row-major order: (0, 2), (0, 3), (1, 2), (1, 3).
    assert as_set(pairs, False) == {(0, 2), (0, 3)}


@pytest.mark.parametrize("labels", [torch.arange(6), torch.zeros(0, dtype=torch.long),
                                    torch.zeros(1, dtype=torch.long)],
                         ids=["singletons", "empty", "one-item"])
def test_no_positive_pairs_gives_no_pairs(labels):
    for hard in (False, True):
        pairs = select_pairs(labels, distances=torch.zeros(len(labels), len(labels)), hard=hard)
        assert all(len(t) == 0 for t in pairs)


def test_one_class_gives_only_positives():
    pairs = select_pairs(torch.full((5,), 3), (1, 3))
    assert len(pairs.first) == 10 and pairs.same.all()


def test_bad_arguments_are_one_line_errors():
    labels = pk_labels(2, 2)
    with pytest.raises(ConfigError, match="at least one"):
        select_pairs(labels, (0, 3))
    with pytest.raises(ConfigError, match="ratio"):
        select_pairs(labels, (1,))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="distance matrix"):
        select_pairs(labels, hard=True)
    with pytest.raises(DataError, match="distances"):
        select_pairs(labels, distances=torch.zeros(3, 3))
    with pytest.raises(DataError, match="labels"):
        select_pairs(labels[:, None])

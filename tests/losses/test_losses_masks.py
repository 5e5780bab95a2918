"""Label masks, padded positive tables, anchor blocks, and the registry of selectors."""

from __future__ import annotations

import pytest
import torch

from lookalike.errors import ConfigError, DataError
from lookalike.losses import TripletLoss
from lookalike.mining.masks import (
    anchor_blocks,
    other_label_mask,
    positive_table,
    same_label_mask,
)
from lookalike.mining.online import SELECTORS, all_triplets


def test_masks_match_loops():
    labels = torch.tensor([2, 0, 2, 1, 0, 2])
    same, other = same_label_mask(labels), other_label_mask(labels)
    for i in range(6):
        for j in range(6):
            assert same[i, j] == (labels[i] == labels[j] and i != j)
            assert other[i, j] == (labels[i] != labels[j])


def test_positive_table_lists_positives_in_order():
    labels = torch.tensor([2, 0, 2, 1, 0, 2])
    index, valid = positive_table(same_label_mask(labels))
    assert index.shape == (6, 2)
    rows = [index[i][valid[i]].tolist() for i in range(6)]
    assert rows == [[2, 5], [4], [0, 5], [], [1], [0, 2]]


def test_anchor_blocks_cover_in_bounded_steps():
    blocks = list(anchor_blocks(10, elements_per_anchor=6, chunk_elements=20))
    assert [(b.start, b.stop) for b in blocks] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert [(b.start, b.stop) for b in anchor_blocks(3, 100, 1)] == [(0, 1), (1, 2), (2, 3)]


def test_all_triplets_match_loop():
    labels = torch.tensor([0, 1, 0, 2, 1])
    expected = [
        (a, p, n)
        for a in range(5)
        for p in range(5)
        for n in range(5)
        if p != a and labels[p] == labels[a] and labels[n] != labels[a]
    ]
    got = list(zip(*(t.tolist() for t in all_triplets(labels)), strict=True))
    assert got == expected


@pytest.mark.parametrize("name", list(SELECTORS))
def test_selectors_run_without_grad_and_return_valid_triplets(name):
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(20, 3, generator=gen, requires_grad=True)
    labels = torch.randint(0, 4, (20,), generator=gen)
    dist = torch.cdist(emb, emb)
    a, p, n = SELECTORS.get(name)(dist, labels, 1.0)
    assert len(a) > 0 and a.dtype == torch.long and not a.requires_grad
    assert (labels[a] == labels[p]).all() and (a != p).all() and (labels[a] != labels[n]).all()


def test_bad_configuration_and_shapes_raise_lookalike_errors():
    with pytest.raises(ConfigError, match="batch_hard"):
        TripletLoss("batch_hard")
    with pytest.raises(ConfigError, match="manhattan"):
        TripletLoss(distance="manhattan")
    with pytest.raises(ConfigError, match="margin"):
        TripletLoss(margin=-1.0)
    with pytest.raises(DataError, match=r"\(4, 2\) and \(3,\)"):
        TripletLoss()(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(DataError, match="B > 0"):
        TripletLoss()(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))


@pytest.mark.parametrize("size", [0, 1, 2])
@pytest.mark.parametrize("name", list(SELECTORS))
def test_selectors_on_tiny_batches_return_no_triplets(name, size):
    labels = torch.zeros(size, dtype=torch.long)
    found = SELECTORS.get(name)(torch.zeros(size, size), labels, 0.2)
    assert all(len(t) == 0 and t.dtype == torch.long for t in found)

"""Offline triplets: random_triplets, the batch sampler, and the "offline" loss layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lookalike.errors import DataError
from lookalike.losses import TripletLoss
from lookalike.mining.offline import OfflineTripletSampler, random_triplets


def test_random_triplets_are_valid_and_cover_every_anchor():
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4])  # classes 2 and 4 are singletons
    t = random_triplets(labels, per_anchor=5, seed=1)
    anchor, positive, negative = (x.numpy() for x in t)
    assert all(x.dtype == np.int64 for x in (anchor, positive, negative))
    assert (labels[anchor] == labels[positive]).all()
    assert (anchor != positive).all()
    assert (labels[anchor] != labels[negative]).all()
    expected = [i for i in range(len(labels)) if (labels == labels[i]).sum() > 1]
    assert anchor.tolist() == [i for i in expected for _ in range(5)]


def test_random_triplets_draw_every_candidate():
    labels = torch.tensor([0] * 4 + [1] * 3 + [2] * 5)
    t = random_triplets(labels, per_anchor=400, seed=0)
    for a in range(len(labels)):
        rows = t.anchor == a
        same = {i for i in range(len(labels)) if labels[i] == labels[a] and i != a}
        other = {i for i in range(len(labels)) if labels[i] != labels[a]}
        assert set(t.positive[rows].tolist()) == same
        assert set(t.negative[rows].tolist()) == other


def test_random_triplets_are_deterministic_per_seed():
    labels = torch.randint(0, 5, (50,), generator=torch.Generator().manual_seed(0))
    first, again = random_triplets(labels, 3, seed=7), random_triplets(labels, 3, seed=7)
    other = random_triplets(labels, 3, seed=8)
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    assert not torch.equal(first.negative, other.negative)


def test_random_triplets_reject_a_single_class():
    with pytest.raises(DataError, match="two classes"):
        random_triplets(np.zeros(5, dtype=int), 1, seed=0)


def test_sampler_yields_flat_triples_reseeded_per_epoch():
    labels = torch.tensor([0] * 3 + [1] * 3 + [2] * 2)
    triplets = random_triplets(labels, per_anchor=1, seed=0)
    sampler = OfflineTripletSampler(triplets, triplets_per_batch=3, seed=5)
    table = {tuple(x) for x in torch.stack(list(triplets), dim=1).tolist()}
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3  # 8 triplets -> 3 + 3 + 2
    assert [len(b) for b in batches] == [9, 9, 6]
    seen = [tuple(b[i : i + 3]) for b in batches for i in range(0, len(b), 3)]
    assert sorted(seen) == sorted(table)
    assert list(sampler) == batches  # same epoch, same order
    sampler.set_epoch(1)
    assert list(sampler) != batches
    dropping = OfflineTripletSampler(triplets, 3, seed=5, drop_last=True)
    assert len(dropping) == len(list(dropping)) == 2


@pytest.mark.parametrize("soft", [False, True], ids=["hinge", "soft"])
def test_offline_loss_uses_exactly_the_laid_out_triplets(soft, value_and_grad):
    gen = torch.Generator().manual_seed(3)
    emb = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 2, 2, 0, 1, 1, 2, 0, 0, 3])

    def loop(e, y):
        losses = []
        for i in range(0, len(e), 3):
            x = (e[i] - e[i + 1]).norm() - (e[i] - e[i + 2]).norm()
            losses.append(torch.nn.functional.softplus(x) if soft else torch.relu(x + 0.5))
        kept = [x for x in losses if x > 0]
        return sum(kept) / len(kept)

    v_ours, g_ours = value_and_grad(TripletLoss("offline", margin=0.5, soft=soft), emb, labels)
    v_loop, g_loop = value_and_grad(loop, emb, labels)
    torch.testing.assert_close(v_ours, v_loop)
    torch.testing.assert_close(g_ours, g_loop)


def test_offline_loss_rejects_a_broken_layout():
    emb = torch.zeros(6, 2)
    with pytest.raises(DataError, match="rows 3-5"):
        TripletLoss("offline")(emb, torch.tensor([0, 0, 1, 2, 1, 0]))
    with pytest.raises(DataError, match=r"multiple of 3|triples"):
        TripletLoss("offline")(torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]))

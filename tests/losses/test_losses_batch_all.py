"""Batch-all: equals a loop; sorted hinge == blockwise; chunked == unchunked; O(B^2) graph."""

from __future__ import annotations

import pytest
import torch

from lookalike.distances import pairwise_distance
from lookalike.losses import TripletLoss
from lookalike.losses.batch_all import hinge_sums_sorted, triplet_sums_blockwise
from lookalike.mining.online import all_triplets


def loop_batch_all(emb, labels, margin, soft, reduction):
    """Every valid triplet, one at a time, reduced like PML's AvgNonZeroReducer (or mean)."""
    dist = pairwise_distance(emb)
    losses = []
    for a, p, n in zip(*all_triplets(labels), strict=True):
        x = dist[a, p] - dist[a, n]
        losses.append(torch.nn.functional.softplus(x) if soft else torch.relu(x + margin))
    kept = [x for x in losses if x > 0] if reduction == "positive" else losses
    return sum(kept) / len(kept)


@pytest.mark.parametrize("reduction", ["positive", "mean"])
@pytest.mark.parametrize("soft", [False, True], ids=["hinge", "soft"])
def test_batch_all_matches_loop(soft, reduction, make_batch, value_and_grad):
    emb, labels = make_batch([3, 1, 4, 2], dim=3, seed=2)
    loss = TripletLoss("batch-all", margin=0.5, soft=soft, reduction=reduction)
    v_ours, g_ours = value_and_grad(loss, emb, labels)
    v_loop, g_loop = value_and_grad(
        lambda e, y: loop_batch_all(e, y, 0.5, soft, reduction), emb, labels
    )
    torch.testing.assert_close(v_ours, v_loop)
    torch.testing.assert_close(g_ours, g_loop)


@pytest.mark.parametrize("chunk", [1, 7, 300])
def test_chunked_equals_unchunked(chunk, make_batch, value_and_grad):
    emb, labels = make_batch([5, 2, 8, 1, 6, 4], dim=4, seed=4)
    whole = TripletLoss("batch-all", soft=True, chunk_elements=1 << 30)
    split = TripletLoss("batch-all", soft=True, chunk_elements=chunk)
    v_whole, g_whole = value_and_grad(whole, emb, labels)
    v_split, g_split = value_and_grad(split, emb, labels)
    torch.testing.assert_close(v_split, v_whole, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g_split, g_whole, rtol=1e-12, atol=1e-14)
    assert whole(emb, labels).stats == split(emb, labels).stats


@pytest.mark.parametrize("margin", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("quantise", [False, True], ids=["random", "ties"])
def test_sorted_hinge_equals_blockwise_hinge(margin, quantise, make_batch):
    # Quantised distances put many violations exactly on 0, where the hinge is inactive.
    emb, labels = make_batch([5, 2, 8, 1, 6, 4], dim=3, seed=6, quantise=quantise)
    dist = pairwise_distance(emb.float())
    fast = hinge_sums_sorted(dist, labels, margin)
    slow = triplet_sums_blockwise(dist, labels, margin, soft=False, chunk_elements=50)
    assert torch.equal(fast.weight, slow.weight)
    assert fast.num_positive == slow.num_positive > 0
    torch.testing.assert_close(fast.value, slow.value, rtol=1e-6, atol=1e-6)


def test_soft_gradient_past_the_softplus_threshold(make_batch, pml_loss, value_and_grad):
    # Violations of ~40: softplus is linear there, and so must the gradient be.
    emb, labels = make_batch([4] * 4, dim=2, seed=8)
    emb = emb * 20
    ours = TripletLoss("batch-all", soft=True, distance="squared_euclidean")
    v_ours, g_ours = value_and_grad(ours, emb, labels)
    v_pml, g_pml = value_and_grad(
        pml_loss("batch-all", "squared_euclidean", soft=True), emb, labels
    )
    torch.testing.assert_close(v_ours, v_pml, rtol=1e-12, atol=0)
    torch.testing.assert_close(g_ours, g_pml, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("soft", [False, True], ids=["hinge", "soft"])
def test_graph_saves_only_quadratic_memory(soft):
    size = 256  # B^3 = 16.8M; B^2 = 65K
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(size, 16, generator=gen, requires_grad=True)
    labels = torch.arange(size) // 8
    saved = []

    def pack(tensor):
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = TripletLoss("batch-all", soft=soft, chunk_elements=1 << 16)(emb, labels)
    out.loss.backward()
    assert out.stats.num_triplets == size * 7 * (size - 8)
    assert sum(saved) < 8 * size * size
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0

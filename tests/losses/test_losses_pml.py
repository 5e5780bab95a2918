"""TripletLoss against pytorch-metric-learning: value and gradient, on random and tied inputs."""

from __future__ import annotations

import pytest
import torch

from lookalike.distances import pairwise_distance
from lookalike.losses import TripletLoss
from lookalike.mining.online import batch_hard, semi_hard_all

from .conftest import BATCHES, compare

METRICS = ["euclidean", "squared_euclidean", "cosine"]
SELECTIONS = ["batch-all", "batch-hard"]


def _compare(ours, pml, emb, labels, value_and_grad) -> None:
    """``compare`` at its default tolerances, on a loss that is not zero."""
    v_ours, _ = compare(ours, pml, emb, labels, value_and_grad)
    assert v_ours.item() > 0


@pytest.mark.parametrize("batch", list(BATCHES))
@pytest.mark.parametrize("soft", [False, True], ids=["hinge", "soft"])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("selection", SELECTIONS)
def test_matches_pml(selection, metric, soft, batch, make_batch, pml_loss, value_and_grad):
    sizes, dim, quantise = BATCHES[batch]
    emb, labels = make_batch(sizes, dim=dim, seed=len(sizes) + dim, quantise=quantise)
    if metric == "cosine":  # a zero row has no direction: make it (1, 1, 1)
        emb[emb.abs().sum(dim=1) == 0] = 1.0
    ours = TripletLoss(selection, distance=metric, margin=0.3, soft=soft)
    _compare(ours, pml_loss(selection, metric, 0.3, soft), emb, labels, value_and_grad)


@pytest.mark.parametrize("metric", ["euclidean", "squared_euclidean"])
def test_batch_hard_breaks_ties_like_pml(metric, make_batch, pml_loss):
    emb, labels = make_batch([6] * 8, dim=2, seed=3, quantise=True)
    dist = pairwise_distance(emb, metric=metric)
    ours = batch_hard(dist, labels)
    theirs = pml_loss("batch-hard", metric).miner(emb, labels)
    # Many rows hold several equally far positives / equally near negatives.
    assert len(torch.unique(dist)) < 10
    for mine, pml in zip(ours, theirs, strict=True):
        assert torch.equal(mine, pml)


@pytest.mark.parametrize("quantise", [False, True], ids=["random", "ties"])
@pytest.mark.parametrize("metric", ["euclidean", "squared_euclidean", "cosine"])
def test_semi_hard_all_matches_pml(metric, quantise, make_batch, pml_loss, value_and_grad):
    if quantise and metric == "cosine":
        pytest.skip("PML's inverted cosine gap s_ap - s_an is not our float d_an - d_ap")
    emb, labels = make_batch([5] * 8, dim=3, seed=7, quantise=quantise)
    # Quantised: many gaps fall exactly on 0 or on the margin, the edges of the band.
    # Selection is then compared on PML's own matrix (cdist ** power), float for float.
    margin = 1.0 if quantise else (0.5 if metric != "cosine" else 0.1)
    pml = pml_loss("semi-hard-all", metric, margin)
    dist = pairwise_distance(emb, metric=metric)
    if quantise:
        dist = torch.cdist(emb, emb) ** (2 if metric == "squared_euclidean" else 1)
    mine = semi_hard_all(dist, labels, margin)
    theirs = pml.miner(emb, labels)
    assert len(mine.anchor) > 10
    as_set = lambda t: sorted(zip(*(x.tolist() for x in t), strict=True))  # noqa: E731
    assert as_set(mine) == as_set(theirs)
    if not quantise:  # on integer gaps every band triplet has loss 0 or PML's rounding noise
        ours = TripletLoss("semi-hard-all", distance=metric, margin=margin)
        _compare(ours, pml, emb, labels, value_and_grad)


@pytest.mark.parametrize("selection", ["batch-all", "batch-hard", "semi-hard", "semi-hard-all"])
@pytest.mark.parametrize("soft", [False, True], ids=["hinge", "soft"])
def test_single_class_gives_zero_with_graph(selection, soft, make_batch, pml_loss):
    emb, labels = make_batch([10], dim=4)
    leaf = emb.clone().requires_grad_(True)
    out = TripletLoss(selection, soft=soft)(leaf, labels)
    assert out.loss.item() == 0.0 and out.loss.requires_grad
    out.loss.backward()
    assert torch.equal(leaf.grad, torch.zeros_like(emb))
    assert out.stats.num_triplets == 0 and out.stats.fraction_positive == 0.0
    if selection in ("batch-all", "batch-hard"):
        assert pml_loss(selection, soft=soft)(emb, labels).item() == 0.0


@pytest.mark.parametrize("selection", ["batch-all", "batch-hard", "semi-hard"])
def test_all_singletons_and_duplicates_give_no_nan(selection):
    leaf = torch.zeros(6, 3, requires_grad=True)  # every distance 0, every class alone
    out = TripletLoss(selection)(leaf, torch.arange(6))
    out.loss.backward()
    assert out.loss.item() == 0.0 and torch.isfinite(leaf.grad).all()
    # Duplicates inside classes: all distances 0, every hinge equals the margin.
    leaf = torch.zeros(6, 3, requires_grad=True)
    out = TripletLoss(selection, margin=0.2)(leaf, torch.tensor([0, 0, 1, 1, 2, 2]))
    out.loss.backward()
    assert out.loss.item() == pytest.approx(0.2)
    assert torch.isfinite(leaf.grad).all()


@pytest.mark.parametrize("selection", SELECTIONS)
def test_float32_pk_batch_close_to_pml(selection, make_batch, pml_loss, value_and_grad):
    emb, labels = make_batch([8] * 16, dim=32, seed=11)
    emb = torch.nn.functional.normalize(emb, dim=1).float()
    ours = TripletLoss(selection, margin=0.2)
    v_ours, g_ours = value_and_grad(ours, emb, labels)
    v_pml, g_pml = value_and_grad(pml_loss(selection, margin=0.2), emb, labels)
    torch.testing.assert_close(v_ours, v_pml, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(g_ours, g_pml, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("margin", [0.0, 1.0])
@pytest.mark.parametrize("selection", SELECTIONS)
def test_violations_exactly_zero_match_pml(selection, margin, make_batch, pml_loss, value_and_grad):
    # Integer coordinates: euclidean distances are exact square roots in both libraries,
    # and many violations d_ap - d_an + m are exactly 0 (inactive for the hinge).
    emb, labels = make_batch([6] * 8, dim=2, seed=12, quantise=True)
    dist = pairwise_distance(emb)
    x = dist[:, :, None] - dist[:, None, :] + margin
    assert (x == 0).sum() > 100
    ours = TripletLoss(selection, margin=margin)
    _compare(ours, pml_loss(selection, "euclidean", margin), emb, labels, value_and_grad)

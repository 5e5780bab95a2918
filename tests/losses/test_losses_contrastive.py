"""ContrastiveLoss against pytorch-metric-learning and a hand-written oracle, value and gradient."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from lookalike.distances import pairwise_distance
from lookalike.errors import ConfigError, DataError
from lookalike.losses import ContrastiveLoss
from lookalike.mining import select_pairs
from lookalike.types import LossOutput

from .conftest import BATCHES, compare

# (pos_margin, neg_margin); distances of the random batches lie around 2-5.
MARGINS = [(0.0, 0.5), (0.0, 3.0), (0.5, 3.5), (2.0, 6.0)]
SEED = 17


@pytest.fixture
def pml_contrastive():
    """Factory: PML's ContrastiveLoss on the very pairs select_pairs draws with SEED."""
    pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import distances, losses

    def make(pos_margin: float, neg_margin: float, ratio=(1, 3), hard: bool = False,
             normalize: bool = False):
        loss = losses.ContrastiveLoss(
            pos_margin=pos_margin, neg_margin=neg_margin,
            distance=distances.LpDistance(normalize_embeddings=normalize, p=2, power=1),
        )

        def run(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            dist = pairwise_distance(emb.detach())
            pairs = select_pairs(labels, ratio, torch.Generator().manual_seed(SEED), dist, hard)
            s = pairs.same
            return loss(emb, labels, (pairs.first[s], pairs.second[s],
                                      pairs.first[~s], pairs.second[~s]))

        return run

    return make


def ours(pos_margin: float, neg_margin: float, **kwargs) -> ContrastiveLoss:
    return ContrastiveLoss(pos_margin, neg_margin,
                           generator=torch.Generator().manual_seed(SEED), **kwargs)


@pytest.mark.parametrize("hard", [False, True], ids=["random", "hard"])
@pytest.mark.parametrize("batch", list(BATCHES))
@pytest.mark.parametrize("margins", MARGINS, ids=str)
def test_matches_pml(margins, batch, hard, make_batch, pml_contrastive, value_and_grad):
    sizes, dim, quantise = BATCHES[batch]
    emb, labels = make_batch(sizes, dim=dim, seed=len(sizes) + dim, quantise=quantise)
    mine = ours(*margins, hard_negatives=hard)
    value, grad = compare(mine, pml_contrastive(*margins, hard=hard), emb, labels,
                          value_and_grad)
    assert value.item() > 0 and grad.abs().sum() > 0


@pytest.mark.parametrize("ratio", [(1, 1), (2, 5)])
def test_matches_pml_other_ratios(ratio, make_batch, pml_contrastive, value_and_grad):
    emb, labels = make_batch([4] * 8, dim=6, seed=2)
    mine = ours(0.0, 3.0, ratio=ratio)
    compare(mine, pml_contrastive(0.0, 3.0, ratio=ratio), emb, labels, value_and_grad)


def test_float32_normalised_close_to_pml_default_distance(make_batch, pml_contrastive,
                                                          value_and_grad):
    # PML's LpDistance() normalises inside; ours sees the embedding head's L2-normalised output.
    emb, labels = make_batch([8] * 16, dim=32, seed=11)
    emb = emb.float()
    mine = ours(0.0, 1.0)

    def ours_on_unit(x, y):
        return mine(torch.nn.functional.normalize(x, dim=1), y)

    pml = pml_contrastive(0.0, 1.0, normalize=True)
    # (select_pairs uses unnormalised distances only for hard negatives; random: same pairs)
    compare(ours_on_unit, pml, emb, labels, value_and_grad, rtol=1e-5, atol=1e-6)


def test_identical_embeddings_have_finite_gradients(pml_contrastive, value_and_grad):
    emb = torch.zeros(8, 3, dtype=torch.float64)  # every distance exactly 0
    emb[4:] = 1.0
    labels = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])  # positives at 0 and at sqrt(3)
    for hard in (False, True):
        v_ours, g_ours = compare(ours(0.0, 0.5, hard_negatives=hard),
                                 pml_contrastive(0.0, 0.5, hard=hard), emb, labels,
                                 value_and_grad)
        assert torch.isfinite(g_ours).all() and torch.isfinite(v_ours)
    leaf = torch.zeros(6, 4, requires_grad=True)
    out = ContrastiveLoss(neg_margin=0.5)(leaf, torch.tensor([0, 0, 1, 1, 2, 2]))
    out.loss.backward()
    assert out.loss.item() == pytest.approx(0.5)  # positives cost 0, negatives the margin
    assert torch.isfinite(leaf.grad).all()


@pytest.mark.parametrize("squared", [False, True])
def test_no_positive_pairs_gives_zero_with_graph(squared, pml_contrastive):
    leaf = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.arange(6)  # singletons: no positive pair, so no negatives either
    out = ContrastiveLoss(squared=squared)(leaf, labels)
    assert out.loss.item() == 0.0 and out.loss.requires_grad
    out.loss.backward()
    assert torch.equal(leaf.grad, torch.zeros_like(leaf))
    assert out.stats.num_triplets == 0 and out.stats.fraction_positive == 0.0
    assert math.isnan(out.stats.mean_positive_distance)
    assert pml_contrastive(0.0, 0.5)(leaf.detach(), labels).item() == 0.0


def test_one_class_matches_pml(make_batch, pml_contrastive, value_and_grad):
    emb, labels = make_batch([7], dim=4, seed=5)
    value, _ = compare(ours(0.5, 1.0), pml_contrastive(0.5, 1.0), emb, labels, value_and_grad)
    out = ours(0.5, 1.0)(emb, labels)
    assert value.item() > 0 and out.stats.num_triplets == 21
    assert math.isnan(out.stats.mean_negative_distance)


def naive_squared_loss(emb, labels, margin, ratio, seed):
    """y·d² + (1−y)·max(m − d, 0)² pair by pair, then PML's reduction: mean over the pairs
    with loss > 0, positives and negatives apart, summed."""
    pairs = select_pairs(labels, ratio, torch.Generator().manual_seed(seed))
    pos_losses, neg_losses = [], []
    for i, j, same in zip(*(t.tolist() for t in pairs), strict=True):
        d = math.sqrt(sum((a - b) ** 2 for a, b in zip(emb[i].tolist(), emb[j].tolist(),
                                                           strict=True)))
        if same:
            pos_losses.append(d * d)
        else:
            neg_losses.append(max(margin - d, 0.0) ** 2)
    mean_nonzero = lambda xs: (sum(x for x in xs if x > 0) / max(1, sum(x > 0 for x in xs)))  # noqa: E731
    return mean_nonzero(pos_losses) + mean_nonzero(neg_losses), pairs


@pytest.mark.parametrize("margin", [0.5, 2.0, 4.0])
@pytest.mark.parametrize("batch", list(BATCHES))
def test_squared_matches_hadsell_closed_form(batch, margin, make_batch):
    sizes, dim, quantise = BATCHES[batch]
    emb, labels = make_batch(sizes, dim=dim, seed=3, quantise=quantise)
    expected, pairs = naive_squared_loss(emb, labels, margin, (1, 3), SEED)
    out = ours(0.0, margin, squared=True)(emb, labels)
    assert out.loss.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert out.stats.num_triplets == len(pairs.first)
    # gradient: d/dx of the same closed form written with torch ops, pair by pair
    leaf = emb.clone().requires_grad_(True)
    terms = []
    for i, j, same in zip(*(t.tolist() for t in pairs), strict=True):
        squared_d = (leaf[i] - leaf[j]).pow(2).sum()
        d = squared_d.clamp_min(1e-300).sqrt()  # the clamp only guards d = 0 (ties)
        terms.append((squared_d, True) if same else ((margin - d).clamp_min(0) ** 2, False))
    reduce = lambda ts: (sum((t for t in ts if t.item() > 0), torch.zeros((), dtype=emb.dtype))  # noqa: E731
                         / max(1, sum(t.item() > 0 for t in ts)))
    oracle = reduce([t for t, s in terms if s]) + reduce([t for t, s in terms if not s])
    (g_oracle,) = torch.autograd.grad(oracle, leaf)
    leaf2 = emb.clone().requires_grad_(True)
    ours(0.0, margin, squared=True)(leaf2, labels).loss.backward()
    torch.testing.assert_close(leaf2.grad, g_oracle, rtol=1e-9, atol=1e-12)


def test_stats_describe_the_pairs():
    emb = torch.tensor([[0.0], [1.0], [3.0], [3.5]])
    labels = torch.tensor([0, 0, 1, 1])
    out = ContrastiveLoss(neg_margin=2.5, ratio=(1, 1), hard_negatives=True)(emb, labels)
    # positives (0,1) d=1, (2,3) d=0.5; hardest negatives (1,2) d=2, (1,3) d=2.5
    assert out.stats.num_triplets == 4
    assert out.stats.mean_positive_distance == pytest.approx(0.75)
    assert out.stats.mean_negative_distance == pytest.approx(2.25)
    assert out.stats.fraction_positive == pytest.approx(3 / 4)  # (1,3) sits on the margin
    assert out.loss.item() == pytest.approx(0.75 + 0.5)


def test_loss_decreases_training_a_linear_model():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(8)
    centres = torch.randn(4, 10, generator=gen) * 3  # four well separated clusters
    x = centres[labels] + 0.3 * torch.randn(32, 10, generator=gen)
    model = torch.nn.Linear(10, 4)
    torch.nn.init.normal_(model.weight, std=0.1, generator=gen)

    def embed() -> torch.Tensor:  # L2-normalised, as the embedding head does
        return torch.nn.functional.normalize(model(x), dim=1)

    def held_out() -> LossOutput:  # the same pairs before and after training
        with torch.no_grad():
            return ContrastiveLoss(0.0, 1.0, generator=torch.Generator().manual_seed(2))(
                embed(), labels)

    before = held_out()
    loss_fn = ContrastiveLoss(0.0, 1.0, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(20):
        out = loss_fn(embed(), labels)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        assert math.isfinite(out.loss.item())
    after = held_out()
    assert after.loss.item() < 0.5 * before.loss.item()
    assert after.stats.mean_positive_distance < 0.2 < 1.0 < after.stats.mean_negative_distance


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="neg_margin"):
        ContrastiveLoss(neg_margin=0.0)
    with pytest.raises(ConfigError, match="pos_margin"):
        ContrastiveLoss(pos_margin=-0.1)
    with pytest.raises(ConfigError, match="distance"):
        ContrastiveLoss(distance="manhattan")
    with pytest.raises(ConfigError, match="ratio"):
        ContrastiveLoss(ratio=(3, 0))
    with pytest.raises(DataError, match="ContrastiveLoss needs"):
        ContrastiveLoss()(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))


def test_other_distances_run_and_select_in_their_metric():
    emb = torch.nn.functional.normalize(torch.randn(16, 4, generator=torch.Generator()
                                                    .manual_seed(0)), dim=1)
    labels = torch.arange(4).repeat_interleave(4)
    for metric in ("squared_euclidean", "cosine"):
        leaf = emb.clone().requires_grad_(True)
        out = ContrastiveLoss(neg_margin=0.5, distance=metric, hard_negatives=True)(leaf, labels)
        out.loss.backward()
        assert torch.isfinite(leaf.grad).all() and out.stats.num_triplets == 4 * 6 * 4
        dist = pairwise_distance(emb, metric=metric)
        worst = max(dist[i, j].item() for i, j in itertools.combinations(range(16), 2)
                    if labels[i] != labels[j])
        assert out.stats.mean_negative_distance < worst

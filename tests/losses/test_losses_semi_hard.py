"""Semi-hard selection (FaceNet) against a plain-loop oracle, fallback included."""

from __future__ import annotations

import pytest
import torch

from lookalike.distances import pairwise_distance
from lookalike.losses import TripletLoss
from lookalike.mining.online import semi_hard


def semi_hard_oracle(dist: torch.Tensor, labels: torch.Tensor) -> list[tuple[int, int, int]]:
    """Schroff et al. 2015, one anchor-positive pair at a time; fallback: farthest negative."""
    found = []
    size = len(labels)
    for a in range(size):
        negatives = [n for n in range(size) if labels[n] != labels[a]]
        for p in range(size):
            if p == a or labels[p] != labels[a] or not negatives:
                continue
            farther = [n for n in negatives if dist[a, n] > dist[a, p]]
            if farther:
                n = min(farther, key=lambda n: (dist[a, n].item(), n))
            else:
                n = max(negatives, key=lambda n: (dist[a, n].item(), -n))
            found.append((a, p, n))
    return found


@pytest.mark.parametrize("quantise", [False, True], ids=["random", "ties"])
@pytest.mark.parametrize("seed", range(3))
def test_semi_hard_matches_loop(seed, quantise, make_batch):
    emb, labels = make_batch([1, 4, 3, 6, 2, 5], dim=3, seed=seed, quantise=quantise)
    dist = pairwise_distance(emb)
    got = semi_hard(dist, labels)
    assert list(zip(*(t.tolist() for t in got), strict=True)) == semi_hard_oracle(dist, labels)


def test_fallback_is_the_farthest_negative():
    # 1-D: anchor 0 at 0, its positive at 10; negatives at 1, 2, 3 are all closer.
    emb = torch.tensor([[0.0], [10.0], [1.0], [3.0], [2.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 1])
    got = semi_hard(pairwise_distance(emb), labels)
    pairs = {(a, p): n for a, p, n in zip(*(t.tolist() for t in got), strict=True)}
    assert pairs[(0, 1)] == 3  # no negative beyond 10 from 0: take the farthest, at 3
    assert pairs[(1, 0)] == 2  # from 10: positive at d=10, negatives at d=9, 7, 8: item 2
    # Anchors 2..4 (class 1): from 1, positive 3 at d=2, negatives 0 (d=1) and 10 (d=9).
    assert pairs[(2, 3)] == 1


def test_semi_hard_loss_matches_loop(make_batch):
    emb, labels = make_batch([3, 4, 2, 5], dim=2, seed=5)
    leaf = emb.clone().requires_grad_(True)
    out = TripletLoss("semi-hard", margin=0.4)(leaf, labels)
    out.loss.backward()
    ref_leaf = emb.clone().requires_grad_(True)
    dist = pairwise_distance(ref_leaf)
    triplets = semi_hard_oracle(dist.detach(), labels)
    losses = [torch.relu(dist[a, p] - dist[a, n] + 0.4) for a, p, n in triplets]
    positive = [x for x in losses if x > 0]
    reference = sum(positive) / len(positive)
    reference.backward()
    torch.testing.assert_close(out.loss, reference.detach())
    torch.testing.assert_close(leaf.grad, ref_leaf.grad)
    assert out.stats.num_triplets == len(triplets)
    assert out.stats.fraction_positive == pytest.approx(len(positive) / len(triplets))

"""LossStats against loops over the triplets each selection considers."""

from __future__ import annotations

import math

import pytest
import torch

from lookalike.distances import pairwise_distance
from lookalike.losses import TripletLoss
from lookalike.mining.online import all_triplets


def loop_stats(dist, triplets, margin):
    a, p, n = (t.tolist() for t in triplets)
    d_ap = [dist[i, j].item() for i, j in zip(a, p, strict=True)]
    d_an = [dist[i, j].item() for i, j in zip(a, n, strict=True)]
    positive = sum(x - y + margin > 0 for x, y in zip(d_ap, d_an, strict=True))
    count = len(d_ap)
    return positive / count, count, sum(d_ap) / count, sum(d_an) / count


@pytest.mark.parametrize("selection", ["batch-all", "batch-hard", "semi-hard", "semi-hard-all"])
def test_stats_match_loop(selection, make_batch):
    emb, labels = make_batch([4, 1, 3, 5, 2], dim=2, seed=9)
    loss = TripletLoss(selection, margin=0.3)
    dist = pairwise_distance(emb)
    if selection == "batch-all":
        triplets = all_triplets(labels)
    else:
        triplets = loss.selector()(dist, labels, 0.3)
    stats = loss(emb, labels).stats
    expected = loop_stats(dist, triplets, 0.3)
    assert 0 < stats.fraction_positive <= 1  # < 1 for batch-all and semi-hard here
    if selection in ("batch-all", "semi-hard"):
        assert stats.fraction_positive < 1
    assert stats.num_triplets == expected[1]
    assert stats == pytest.approx(expected, rel=1e-12)


def test_stats_without_triplets_are_nan_distances():
    stats = TripletLoss("batch-all")(torch.randn(4, 2), torch.zeros(4, dtype=torch.long)).stats
    assert stats.num_triplets == 0 and stats.fraction_positive == 0.0
    assert math.isnan(stats.mean_positive_distance) and math.isnan(stats.mean_negative_distance)

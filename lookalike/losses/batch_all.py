"""Batch-all triplet loss in O(B^2) memory: exact value and gradient, no (B, B, B) tensor.

Batch-all (Hermans et al. 2017) uses every valid triplet of the batch. Listing them, as
PML does, costs B^3 memory in masks and indices. Here the loss is a function of the
(B, B) distance matrix D only, so it is enough to know dL/dD:

    x[a, p, n] = D[a, p] - D[a, n] (+ m)      L = sum_{a,p,n} l(x) / divisor
    dL/dD[a, p] = sum_n l'(x) / divisor       dL/dD[a, n] = -sum_p l'(x) / divisor

Under no_grad we compute the loss sum, the counts and W = divisor * dL/dD; then
``loss = ((W * D).sum() - (W * D).sum().detach() + value) / divisor`` carries the exact
value forward and the exact gradient backward while autograd stores only D.

Hinge: l'(x) = 1[x > 0], so W[a, p] counts the negatives inside the margin, a prefix of
the anchor's sorted negatives found by binary search, and W[a, n] the positives whose
prefix reaches n: O(B^2 log B) time, and the hinge sum is linear in D over the counted
triplets. Soft-plus: every triplet counts, so anchor blocks
of the (anchor, positive, negative) cube over a padded table of each anchor's positives
are summed, each block at most chunk_elements large.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lookalike.losses.hinge import triplet_loss, triplet_loss_slope, violation
from lookalike.losses.stats import stats_from_sums
from lookalike.mining.masks import (
    DEFAULT_CHUNK_ELEMENTS,
    anchor_blocks,
    count_prefix,
    other_label_mask,
    positive_table,
    same_label_mask,
    sorted_negatives,
)
from lookalike.types import LossOutput


class TripletSums(NamedTuple):
    """What batch-all needs from the cube: W = divisor * dL/dD (B, B), sum of losses, count > 0."""

    weight: torch.Tensor
    value: torch.Tensor  # float64 scalar
    num_positive: torch.Tensor  # int64 scalar


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


@torch.no_grad()
def hinge_sums_sorted(dist: torch.Tensor, labels: torch.Tensor, margin: float) -> TripletSums:
    """Hinge sums by counting, per pair, the triplets with x > 0 in sorted rows.

    The negatives counted for (a, p) are exactly the first per_pos[a, p] of a's sorted
    negatives (the predicate x > 0 is monotone in d(a, n)), so ties and x == 0 are
    classified as an elementwise evaluation would classify them.

    Args:
        dist: (B, B) distances.  labels: (B,).  margin: the hinge margin.
    """
    d = _at_least_float32(dist.detach())  # counts in W must stay exact
    same, other = same_label_mask(labels), other_label_mask(labels)
    pos_index, pos_valid = positive_table(same)  # (B, P)
    d_ap = d.gather(1, pos_index)  # (B, P)
    # Per (a, p): negatives with x > 0 are a prefix of a's negatives sorted ascending.
    neg_sorted, neg_order = sorted_negatives(d, other)  # (B, B)
    neg_limit = other.sum(dim=1, keepdim=True).expand_as(pos_index)  # (B, P)
    per_pos = count_prefix(neg_sorted, neg_limit, lambda v: violation(d_ap, v, margin, False) > 0)
    per_pos = per_pos * pos_valid  # (B, P)
    # Per (a, n) at sorted rank r: the positives whose counted prefix reaches past r.
    hist = torch.zeros(d.shape[0], d.shape[1] + 1, dtype=torch.long, device=d.device)
    hist.scatter_add_(1, per_pos, pos_valid.long())  # hist[a, k]: positives counting k
    per_rank = hist.flip(1).cumsum(1).flip(1)[:, 1:]  # (B, B): #{p : per_pos[a, p] > r}
    weight = torch.zeros_like(d).scatter_add_(1, pos_index, per_pos.to(d.dtype))
    weight.scatter_add_(1, neg_order, -per_rank.to(d.dtype))  # 0 past the negatives
    num_positive = per_pos.sum()
    # Sum of x over the counted triplets = sum(W * D) + m * count (x is linear in D).
    value = (weight.double() * d.double()).sum() + margin * num_positive.double()
    return TripletSums(weight, value, num_positive)


@torch.no_grad()
def triplet_sums_blockwise(
    dist: torch.Tensor,
    labels: torch.Tensor,
    margin: float,
    soft: bool,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> TripletSums:
    """Hinge or soft-plus sums over anchor blocks of the (anchor, positive, negative) cube.

    Invalid entries are -inf violations (padding positives at -inf, non-negatives at
    +inf), whose loss and slope are exactly 0, so no triplet mask is built.
    Args:
        dist: (B, B) distances.  labels: (B,).  margin, soft: see hinge.py.
        chunk_elements: bound on the elements of one (anchors, P, B) block.
    """
    d = _at_least_float32(dist.detach())  # counts in W must stay exact
    same, other = same_label_mask(labels), other_label_mask(labels)
    pos_index, pos_valid = positive_table(same)  # (B, P)
    d_ap = d.gather(1, pos_index).masked_fill_(~pos_valid, -torch.inf)  # (B, P)
    d_an = d.masked_fill(~other, torch.inf)  # (B, B)
    weight = torch.zeros_like(d)
    value = torch.zeros((), dtype=torch.float64, device=d.device)
    num_positive = torch.zeros((), dtype=torch.long, device=d.device)
    num, width = pos_index.shape
    for block in anchor_blocks(num, width * num, chunk_elements):
        x = violation(d_ap[block, :, None], d_an[block, None, :], margin, soft)  # (c, P, B)
        losses = triplet_loss(x, soft)
        value += losses.sum(dtype=torch.float64)
        num_positive += (losses > 0).sum()
        slope = triplet_loss_slope(x, soft)  # (c, P, B)
        weight[block].scatter_add_(1, pos_index[block], slope.sum(dim=2))  # W[a, p]
        weight[block] -= slope.sum(dim=1)  # W[a, n]
    return TripletSums(weight, value, num_positive)


def batch_all_loss(
    dist: torch.Tensor,
    labels: torch.Tensor,
    margin: float,
    soft: bool = False,
    reduction: str = "positive",
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> LossOutput:
    """Mean triplet loss over all valid triplets of the batch, in O(B^2) memory.

    Args:
        dist: (B, B) distances, with grad.  labels: (B,).  margin: hinge margin.
        soft: soft-plus instead of the hinge (see hinge.py).
        reduction: "positive" (mean over triplets with loss > 0) or "mean" (over all).
        chunk_elements: block bound for the soft-plus (the hinge needs no blocks).
    Returns:
        LossOutput: the scalar (0 with graph when nothing counts) and its LossStats.
    """
    if soft:
        sums = triplet_sums_blockwise(dist, labels, margin, soft, chunk_elements)
    else:
        sums = hinge_sums_sorted(dist, labels, margin)
    with torch.no_grad():
        d = dist.detach()
        same, other = same_label_mask(labels), other_label_mask(labels)
        n_pos, n_neg = same.sum(dim=1), other.sum(dim=1)  # (B,)
        num_triplets = (n_pos * n_neg).sum()
        sum_ap = ((d * same).sum(dim=1, dtype=torch.float64) * n_neg).sum()
        sum_an = ((d * other).sum(dim=1, dtype=torch.float64) * n_pos).sum()
        divisor = (num_triplets if reduction == "mean" else sums.num_positive).clamp_min(1)
    surrogate = (sums.weight * dist).sum()
    loss = (surrogate - surrogate.detach() + sums.value.to(dist.dtype)) / divisor
    stats = stats_from_sums(num_triplets, sums.num_positive, sum_ap, sum_an)
    return LossOutput(loss, stats)

"""In-batch triplet selectors: which (anchor, positive, negative) triplets a batch trains on.

Contract: ``selector(dist, labels, margin) -> Triplets`` where dist is the (B, B) distance
matrix of the batch (smaller is closer). Selection runs under ``torch.no_grad()``; the loss
then indexes the same ``dist`` with grad, so selection never enters the graph.
Batch-all needs no selector: the loss sums over every valid triplet without listing
them (lookalike.losses.batch_all). Selectors never build a (B, B, B) tensor either: they
search each anchor's sorted negatives, so memory stays O(B^2) plus their output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lookalike.mining.masks import (
    count_prefix,
    other_label_mask,
    positive_table,
    same_label_mask,
    sorted_negatives,
)
from lookalike.registry import Registry
from lookalike.types import Triplets

Selector = Callable[[torch.Tensor, torch.Tensor, float], Triplets]


def _no_triplets(device: torch.device) -> Triplets:
    empty = torch.empty(0, dtype=torch.long, device=device)
    return Triplets(empty, empty.clone(), empty.clone())


@torch.no_grad()
def all_triplets(labels: torch.Tensor) -> Triplets:
    """Every valid triplet (a, p, n), in (a, p, n) order: the oracle and small-batch helper.

    Builds a (B, B, B) mask, so keep B small (a few hundred at most).
    Args:
        labels: (B,) integer labels.
    """
    valid = same_label_mask(labels)[:, :, None] & other_label_mask(labels)[:, None, :]
    return Triplets(*valid.nonzero(as_tuple=True))


@torch.no_grad()
def batch_hard(dist: torch.Tensor, labels: torch.Tensor, margin: float = 0.0) -> Triplets:
    """Per anchor, its farthest positive and nearest negative (Hermans et al. 2017).

    Anchors without a positive or without a negative are skipped. Ties go to the lowest
    index (torch.max/min along a row), exactly as PML's BatchHardMiner resolves them.
    Args:
        dist: (B, B) distances.  labels: (B,).  margin: unused (uniform signature).
    Returns:
        Triplets of shape (A,), A <= B, anchors in ascending order.
    """
    if len(labels) == 0:
        return _no_triplets(dist.device)
    dist = dist.detach()
    same, other = same_label_mask(labels), other_label_mask(labels)
    positive = dist.masked_fill(~same, -torch.inf).max(dim=1).indices  # (B,)
    negative = dist.masked_fill(~other, torch.inf).min(dim=1).indices  # (B,)
    keep = same.any(dim=1) & other.any(dim=1)
    anchor = torch.arange(len(labels), device=dist.device)
    return Triplets(anchor[keep], positive[keep], negative[keep])


@torch.no_grad()
def semi_hard(dist: torch.Tensor, labels: torch.Tensor, margin: float = 0.0) -> Triplets:
    """Per anchor-positive pair, the nearest negative farther than the positive (FaceNet).

    Schroff et al. 2015: n = argmin d(a, n) subject to d(a, n) > d(a, p). When no negative
    is farther than the positive (every negative violates the ordering), fall back, as
    TF-Addons' triplet_semihard_loss does, to the negative with the largest d(a, n): the
    least hard of the hard ones. Ties go to the lowest index. Pairs whose anchor has no
    negative are skipped. The margin only matters to the loss, not to this choice.
    One binary search per pair in the anchor's sorted negatives: O(B^2 log B).
    Args:
        dist: (B, B) distances.  labels: (B,).  margin: unused (uniform signature).
    Returns:
        Triplets, one per anchor-positive pair, in (anchor, positive) order.
    """
    if len(labels) == 0:
        return _no_triplets(dist.device)
    dist = dist.detach()
    same, other = same_label_mask(labels), other_label_mask(labels)
    pos_index, pos_valid = positive_table(same)  # (B, P)
    d_ap = dist.gather(1, pos_index)  # (B, P)
    values, order = sorted_negatives(dist, other)  # (B, B)
    first = torch.searchsorted(values, d_ap.contiguous(), right=True)  # first d(a, n) > d_ap
    nearest = order.gather(1, first.clamp_max(len(labels) - 1))  # (B, P)
    farthest = dist.masked_fill(~other, -torch.inf).argmax(dim=1)  # (B,) the fallback
    found = first < other.sum(dim=1, keepdim=True)
    negative = torch.where(found, nearest, farthest[:, None])
    keep = pos_valid & other.any(dim=1, keepdim=True)  # (B, P)
    anchor = torch.arange(len(labels), device=dist.device)[:, None].expand_as(pos_index)
    return Triplets(anchor[keep], pos_index[keep], negative[keep])


@torch.no_grad()
def semi_hard_all(dist: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> Triplets:
    """Every triplet with d(a, p) < d(a, n) <= d(a, p) + margin: inside the margin band.

    The same selection as PML's TripletMarginMiner(type_of_triplets="semihard"),
    including the test on the float gap ``d(a, n) - d(a, p)``. The band is a run of the
    anchor's sorted negatives, found by two binary searches per pair, so the cost is
    O(B^2 log B) plus the size of the output.
    Args:
        dist: (B, B) distances.  labels: (B,).  margin: width of the band.
    Returns:
        Triplets ordered by anchor, positive, then increasing d(a, n) (ties by index).
    """
    dist = dist.detach()
    same, other = same_label_mask(labels), other_label_mask(labels)
    pos_index, pos_valid = positive_table(same)  # (B, P)
    d_ap = dist.gather(1, pos_index)  # (B, P)
    values, order = sorted_negatives(dist, other)  # (B, B)
    limit = other.sum(dim=1, keepdim=True).expand_as(pos_index)  # (B, P)
    start = count_prefix(values, limit, lambda v: v - d_ap <= 0)  # (B, P)
    stop = count_prefix(values, limit, lambda v: v - d_ap <= margin)  # (B, P)
    length = (stop - start).clamp_min(0) * pos_valid  # (B, P) triplets per pair
    pair = torch.repeat_interleave(length.reshape(-1))  # (T,) flat pair of each triplet
    offset = torch.arange(len(pair), device=dist.device)
    offset = offset - (torch.cumsum(length.reshape(-1), 0) - length.reshape(-1))[pair]
    anchor = torch.div(pair, max(1, pos_index.shape[1]), rounding_mode="floor")
    column = start.reshape(-1)[pair] + offset
    return Triplets(anchor, pos_index.reshape(-1)[pair], order[anchor, column])


# The in-batch selectors by name; docs/extending.md adds one. Batch-all is a selection too,
# but it has no selector: its loss sums every valid triplet without listing them.
SELECTORS: Registry[Selector] = Registry("in-batch selection")
SELECTORS.register("batch-hard", batch_hard)
SELECTORS.register("semi-hard", semi_hard)
SELECTORS.register("semi-hard-all", semi_hard_all)


def online_selections() -> tuple[str, ...]:
    """Every in-batch selection a P x K batch can train with: batch-all and the selectors."""
    return ("batch-all", *SELECTORS.names())

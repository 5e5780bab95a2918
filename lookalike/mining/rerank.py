"""The float64 half of pool mining: exact ranks for the float32 candidates.

Float32 scores order candidates only up to rounding (about 1e-6 relative), so each anchor's
window of approximate ranks around its pool, MARGIN wider at both ends, is ranked again
with exact float64 distances computed by differences, ties to the smaller item index. The
pools then equal a full float64 ranking unless more than MARGIN items lie within rounding
of a pool boundary.
"""

from __future__ import annotations

import torch
from torch import Tensor

MARGIN = 8  # float32 candidates kept beyond each end of a pool, re-ranked in float64
INF = float("inf")


def exact_distances(ref: Tensor, anchors: Tensor, candidates: Tensor, metric: str) -> Tensor:
    """Float64 distances (B, W) from anchors (B,) to candidates (B, W), by differences."""
    anchor_rows, candidate_rows = ref[anchors][:, None, :], ref[candidates]  # (B, 1, D), (B, W, D)
    if metric == "cosine":  # ref rows are unit vectors
        return 1.0 - (anchor_rows * candidate_rows).sum(-1)
    squared = (candidate_rows - anchor_rows).pow(2).sum(-1)
    return squared.sqrt() if metric == "euclidean" else squared


def take_band(index: Tensor, dist: Tensor, first: Tensor, skip: Tensor, count: Tensor,
              k: int) -> tuple[Tensor, Tensor]:
    """Columns first..first+k of exactly ranked rows; -1 / nan past each anchor's count.

    Args:
        index, dist: (B, W) items and distances, ranked.  first: (B,) column of rank ``skip``.
        skip: (B,) hardest candidates skipped.  count: (B,) candidates in all.  k: pool size.
    Returns:
        (B, k) int64 items and (B, k) float32 distances.
    """
    columns = (first[:, None] + torch.arange(k)).clamp_max(index.shape[1] - 1)  # (B, k)
    valid = skip[:, None] + torch.arange(k) < count[:, None]
    picked = torch.where(valid, index.gather(1, columns), -1)
    return picked, torch.where(valid, dist.gather(1, columns), torch.nan).float()


def select_exact(ref: Tensor, anchors: Tensor, candidates: Tensor, count: Tensor, skip: Tensor,
                 k: int, farthest: bool, metric: str) -> tuple[Tensor, Tensor]:
    """Exact pools (B, k) from candidates (B, K) in approximate (float32) rank order.

    The window of approximate ranks [skip - MARGIN, skip + k + MARGIN) is re-ranked in
    float64, ties by smaller index; ranks at or past ``count`` are not candidates.
    Args:
        ref: (N, D) float64 embeddings in dataset order.  anchors: (B,) dataset indices.
        candidates: (B, K) dataset indices, best first by float32 score.
        count, skip: (B,) candidates in all and hardest skipped, per anchor.
        k: pool size.  farthest: rank largest distances first (positives).
        metric: a ``lookalike.distances`` name.
    """
    if candidates.shape[1] == 0 or k == 0:
        return torch.full((len(anchors), k), -1), torch.full((len(anchors), k), torch.nan)
    first = (skip - MARGIN).clamp_min(0)
    rank = first[:, None] + torch.arange(k + 2 * MARGIN)  # (B, W)
    in_range = (rank < count[:, None]) & (rank < candidates.shape[1])
    window = candidates.gather(1, rank.clamp_max(candidates.shape[1] - 1))
    dist = exact_distances(ref, anchors, window, metric).masked_fill(
        ~in_range, -INF if farthest else INF)
    by_index = window.argsort(dim=1, stable=True)
    window, dist = window.gather(1, by_index), dist.gather(1, by_index)
    by_dist = dist.argsort(dim=1, descending=farthest, stable=True)
    window, dist = window.gather(1, by_dist), dist.gather(1, by_dist)
    return take_band(window, dist, skip - first, skip, count, k)

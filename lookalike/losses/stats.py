"""Triplet statistics for logs: share of positive triplets and mean d_ap / d_an (no grad)."""

from __future__ import annotations

import math

import torch

from lookalike.types import LossStats


def stats_from_sums(
    num_triplets: torch.Tensor | int,
    num_positive: torch.Tensor | int,
    sum_ap: torch.Tensor | float,
    sum_an: torch.Tensor | float,
) -> LossStats:
    """LossStats from running sums, for losses that never list triplets.

    The four values reach the host in one transfer, this function's only sync. A training
    step syncs more than this: the loop also reads the loss itself (to check it is finite,
    to add it to the epoch's sums, and for the progress bar).

    Args:
        num_triplets: valid triplets considered.  num_positive: those with loss > 0.
        sum_ap, sum_an: sums of d(a, p) and d(a, n) over the considered triplets.
    """
    values = (num_triplets, num_positive, sum_ap, sum_an)
    device = next((v.device for v in values if torch.is_tensor(v)), None)
    stacked = torch.stack(
        [torch.as_tensor(v, dtype=torch.float64, device=device).detach() for v in values]
    )
    total, positive, ap, an = stacked.tolist()  # one host sync for all four values
    if total == 0:
        return LossStats(0.0, 0, math.nan, math.nan)
    return LossStats(positive / total, int(total), ap / total, an / total)


@torch.no_grad()
def triplet_stats(d_ap: torch.Tensor, d_an: torch.Tensor, losses: torch.Tensor) -> LossStats:
    """What one batch's triplets looked like.

    Args:
        d_ap, d_an: (T,) distances of the considered triplets.  losses: (T,) their losses.
    """
    return stats_from_sums(
        losses.numel(),
        (losses > 0).sum(),
        d_ap.sum(dtype=torch.float64),
        d_an.sum(dtype=torch.float64),
    )


@torch.no_grad()
def pair_stats(distances: torch.Tensor, same: torch.Tensor, losses: torch.Tensor) -> LossStats:
    """What one batch's contrastive pairs looked like, in the triplet fields' terms.

    fraction_positive: share of pairs with loss > 0; num_triplets: number of pairs;
    mean_positive_distance / mean_negative_distance: mean d over same- / other-label pairs
    (nan when there were none of that kind). One host sync, like ``stats_from_sums``.

    Args:
        distances: (P,) pair distances.  same: (P,) bool.  losses: (P,) their losses.
    """
    d = distances.to(torch.float64)
    stacked = torch.stack([
        torch.tensor(float(losses.numel()), dtype=torch.float64, device=d.device),
        (losses > 0).sum().to(torch.float64),
        same.sum().to(torch.float64),
        torch.where(same, d, 0.0).sum(),
        torch.where(same, 0.0, d).sum(),
    ])
    total, positive, n_same, sum_same, sum_other = stacked.tolist()  # one host sync
    n_other = total - n_same
    return LossStats(
        positive / total if total else 0.0,
        int(total),
        sum_same / n_same if n_same else math.nan,
        sum_other / n_other if n_other else math.nan,
    )

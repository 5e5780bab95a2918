"""Reducers: how per-triplet losses become the scalar that is back-propagated.

"positive" averages over the triplets whose loss is > 0 (PML's AvgNonZeroReducer, the
default of its TripletMarginLoss; Hermans et al.'s batch-all): easy triplets would
otherwise dilute the gradient as training progresses. "mean" averages over all of them.
Neither produces NaN on an empty selection: the result is 0 and stays in the graph.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def mean_over_positive(losses: torch.Tensor) -> torch.Tensor:
    """Mean of the losses that are > 0; 0 (graph kept) when there are none.

    Args:
        losses: (T,) per-triplet losses, >= 0.
    """
    positive = losses > 0
    return (losses * positive).sum() / positive.sum().clamp_min(1)


def mean_over_all(losses: torch.Tensor) -> torch.Tensor:
    """Mean of all losses; 0 (graph kept) when there are none.

    Args:
        losses: (T,) per-triplet losses.
    """
    return losses.sum() / max(1, losses.numel())


REDUCERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "positive": mean_over_positive,
    "mean": mean_over_all,
}

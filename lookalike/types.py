"""Plain data types shared across the package; no logic lives here."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Triplets(NamedTuple):
    """Index triplets into a batch: anchor[i], positive[i], negative[i] (each shape (T,), int64)."""

    anchor: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor


class Pairs(NamedTuple):
    """Index pairs into a batch, and whether each pair shares a label (each shape (P,))."""

    first: torch.Tensor
    second: torch.Tensor
    same: torch.Tensor  # bool


class LossStats(NamedTuple):
    """What a triplet loss saw in one batch, for progress bars and logs (floats, no grad).

    fraction_positive: share of the considered triplets whose loss is > 0.
    num_triplets: number of valid triplets considered.
    mean_positive_distance / mean_negative_distance: mean d(a, p) and d(a, n) over them
    (nan when there were none).
    """

    fraction_positive: float
    num_triplets: int
    mean_positive_distance: float
    mean_negative_distance: float


class LossOutput(NamedTuple):
    """Every lookalike loss returns this: a scalar to back-propagate and its statistics."""

    loss: torch.Tensor
    stats: LossStats

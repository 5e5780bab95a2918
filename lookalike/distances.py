"""Pairwise distance matrices shared by losses, miners, evaluation and search.

Contract: ``pairwise_distance(x, y, metric) -> (N, M)`` where smaller always means closer,
so cosine similarity becomes ``1 - cos`` and no caller needs an "inverted" flag.
"""

from __future__ import annotations

import torch

from lookalike.errors import ConfigError

METRICS = ("euclidean", "squared_euclidean", "cosine")


def squared_euclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``|x_i - y_j|^2`` via one matrix multiply, clamped at 0 against rounding.

    Args:
        x: (N, D) embeddings.  y: (M, D) embeddings.
    Returns:
        (N, M) squared distances.
    """
    x_norm = x.pow(2).sum(dim=1, keepdim=True)  # (N, 1)
    y_norm = y.pow(2).sum(dim=1, keepdim=True).T  # (1, M)
    return (x_norm + y_norm - 2.0 * (x @ y.T)).clamp_min(0.0)


def safe_sqrt(squared: torch.Tensor) -> torch.Tensor:
    """Square root whose gradient is 0, not inf/NaN, where the input is 0.

    d sqrt(s)/ds = 1 / (2 sqrt(s)) is infinite at s = 0 (identical embeddings, the
    diagonal). Where s == 0 we take sqrt of a dummy 1 and multiply by 0, which gives the
    same value and the gradient torch.cdist uses (0).
    """
    zero = squared <= 0.0
    root = torch.sqrt(torch.where(zero, torch.ones_like(squared), squared))
    return torch.where(zero, torch.zeros_like(root), root)


def euclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, M) Euclidean distances with a NaN-free gradient at 0."""
    return safe_sqrt(squared_euclidean(x, y))


def cosine(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(N, M) cosine distance ``1 - cos(x_i, y_j)`` in [0, 2]."""
    x_unit = x / x.norm(dim=1, keepdim=True).clamp_min(eps)
    y_unit = y / y.norm(dim=1, keepdim=True).clamp_min(eps)
    return 1.0 - x_unit @ y_unit.T


_BY_NAME = {"euclidean": euclidean, "squared_euclidean": squared_euclidean, "cosine": cosine}


def pairwise_distance(
    x: torch.Tensor, y: torch.Tensor | None = None, metric: str = "euclidean"
) -> torch.Tensor:
    """Distance matrix between the rows of x and y (y defaults to x).

    Args:
        x: (N, D).  y: (M, D) or None.
        metric: "euclidean", "squared_euclidean" or "cosine".
    Returns:
        (N, M) distances; smaller is closer.
    """
    try:
        fn = _BY_NAME[metric]
    except KeyError:
        choices = ", ".join(METRICS)
        raise ConfigError(f"unknown distance {metric!r}; choose one of {choices}") from None
    return fn(x, x if y is None else y)

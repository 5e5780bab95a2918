"""Distances shared by losses, miners, evaluation and search, and the registry of them.

Contract: ``pairwise_distance(x, y, metric) -> (N, M)`` where smaller always means closer,
so cosine similarity becomes ``1 - cos`` and no caller needs an "inverted" flag.

A :class:`Distance` also says how FAISS searches by it (which FAISS metric ranks the same
way, and how to turn FAISS's scores into this distance's unit), so that training,
validation, the index and every reported distance speak one vocabulary: the distance a
model was trained with, named in its checkpoint (``EmbedderConfig.distance``). Adding a
distance is its function plus one ``register_distance`` line (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lookalike.errors import ConfigError
from lookalike.registry import Registry

PairwiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ScoresFn = Callable[[np.ndarray], np.ndarray]


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
    distances: torch.Tensor = 1.0 - x_unit @ y_unit.T
    return distances


def _root_of_squared(scores: np.ndarray) -> np.ndarray:
    """FAISS's L2 scores are squared distances (clamped: rounding can make them < 0)."""
    root: np.ndarray = np.sqrt(_squared(scores))
    return root


def _squared(scores: np.ndarray) -> np.ndarray:
    clamped: np.ndarray = np.maximum(scores, 0.0)
    return clamped


def _one_minus(scores: np.ndarray) -> np.ndarray:
    """Inner products of unit vectors are cosines; the distance is 1 - cos."""
    return 1.0 - scores


@dataclass(frozen=True)
class Distance:
    """One distance, for training (``pairwise``) and for search (the FAISS fields).

    Attributes:
        name: the registry name (``--distance``, ``EmbedderConfig.distance``).
        pairwise: ``(N, D), (M, D) -> (N, M)`` torch distances, smaller is closer.
        faiss_metric: the FAISS metric that ranks neighbours the same way, by its FAISS
            name: "L2" (squared Euclidean), "INNER_PRODUCT" (larger is closer), or another
            ``faiss.METRIC_*`` name such as "L1".
        from_faiss: FAISS scores (numpy) -> this distance, elementwise and monotone.
        unit_vectors: FAISS ranks correctly only on L2-normalised vectors (cosine as an
            inner product); search normalises every vector it adds or is asked about, so
            a model that does not normalise its embeddings still gets cosine distances.
        summary: one line for ``--help`` and ``index info``.
    """

    name: str
    pairwise: PairwiseFn
    faiss_metric: str = "L2"
    from_faiss: ScoresFn = _root_of_squared
    unit_vectors: bool = False
    summary: str = ""

    def faiss_metric_type(self) -> int:
        """FAISS's constant for ``faiss_metric`` (faiss is imported only when needed)."""
        import faiss

        value = getattr(faiss, f"METRIC_{self.faiss_metric}", None)
        if value is None:
            raise ConfigError(f"distance {self.name!r}: FAISS has no metric "
                              f"{self.faiss_metric!r}")
        return int(value)


DISTANCES: Registry[Distance] = Registry("distance")


def register_distance(distance: Distance, *, replace: bool = False) -> Distance:
    """Make ``distance`` available by name to training, evaluation and search."""
    return DISTANCES.register(distance.name, distance, replace=replace)


def get_distance(name: str | Distance) -> Distance:
    """The registered distance ``name`` (a Distance passes through), or a one-line error."""
    return name if isinstance(name, Distance) else DISTANCES.get(name)


register_distance(Distance("euclidean", euclidean, "L2", _root_of_squared,
                           summary="Euclidean distance |x - y|"))
register_distance(Distance("squared_euclidean", squared_euclidean, "L2", _squared,
                           summary="squared Euclidean distance |x - y|^2"))
register_distance(Distance("cosine", cosine, "INNER_PRODUCT", _one_minus, unit_vectors=True,
                           summary="cosine distance 1 - cos(x, y), in [0, 2]"))

METRICS: tuple[str, ...] = DISTANCES.names()
"""The built-in distance names (``DISTANCES.names()`` also lists any registered later)."""


def pairwise_distance(
    x: torch.Tensor, y: torch.Tensor | None = None, metric: str = "euclidean"
) -> torch.Tensor:
    """Distance matrix between the rows of x and y (y defaults to x).

    Args:
        x: (N, D).  y: (M, D) or None.
        metric: a registered distance name ("euclidean", "squared_euclidean", "cosine").
    Returns:
        (N, M) distances; smaller is closer.
    """
    return get_distance(metric).pairwise(x, x if y is None else y)

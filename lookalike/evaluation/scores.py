"""Exact float64 query-gallery scores for a distance: the key that k-NN evaluation ranks by.

For the two FAISS metrics the built-in distances use, the key is one matrix multiply that
ranks exactly like the distance, and only the kept keys are turned into the distance's unit
(so rounding in a square root or a ``1 -`` never merges two neighbours into a tie):

- "INNER_PRODUCT" (cosine on unit vectors): key = -q.g, distance = ``from_faiss(q.g)``;
- "L2" (euclidean, squared_euclidean): key = |g|^2 - 2 q.g (the squared distance less the
  per-row constant |q|^2; the factor -2 scales exactly, so ties stay ties), distance =
  ``from_faiss(key + |q|^2)``.

Any other distance (one registered with another FAISS metric, such as L1) is scored by its
own ``pairwise`` function in float64: the key is the distance itself.
"""

from __future__ import annotations

import numpy as np
import torch

from lookalike.distances import Distance


class ExactScores:
    """Keys of query blocks against one gallery (U, D) float64 by ``distance.pairwise``."""

    def __init__(self, distance: Distance, gallery: np.ndarray) -> None:
        self.distance = distance
        self.gallery = gallery

    def key(self, block: np.ndarray) -> np.ndarray:
        """(C, U) float64 rank keys of the queries ``block`` (C, D); smaller is closer."""
        return self.distance.pairwise(torch.from_numpy(block),
                                      torch.from_numpy(self.gallery)).numpy()

    def distances(self, best: np.ndarray, block: np.ndarray) -> np.ndarray:
        """(C, k) distances, in the distance's unit, of the kept keys ``best`` (C, k)."""
        return best


class InnerProductScores(ExactScores):
    """key = -q.g; the distance is ``from_faiss`` of the inner product."""

    def __init__(self, distance: Distance, gallery: np.ndarray) -> None:
        super().__init__(distance, gallery)
        self.weight = -gallery  # (U, D)

    def key(self, block: np.ndarray) -> np.ndarray:
        key: np.ndarray = block @ self.weight.T  # (C, U)
        return key

    def distances(self, best: np.ndarray, block: np.ndarray) -> np.ndarray:
        return self.distance.from_faiss(-best)


class SquaredL2Scores(ExactScores):
    """key = |g|^2 - 2 q.g; the distance is ``from_faiss`` of the squared L2 distance."""

    def __init__(self, distance: Distance, gallery: np.ndarray) -> None:
        super().__init__(distance, gallery)
        self.weight = -2.0 * gallery  # (U, D)
        self.offset = (gallery**2).sum(axis=1)  # (U,)

    def key(self, block: np.ndarray) -> np.ndarray:
        key: np.ndarray = block @ self.weight.T  # (C, U)
        key += self.offset
        return key

    def distances(self, best: np.ndarray, block: np.ndarray) -> np.ndarray:
        return self.distance.from_faiss(best + (block**2).sum(axis=1, keepdims=True))


_BY_FAISS_METRIC: dict[str, type[ExactScores]] = {
    "INNER_PRODUCT": InnerProductScores, "L2": SquaredL2Scores}


def exact_scores(distance: Distance, gallery: np.ndarray) -> ExactScores:
    """The exact scorer for ``distance``: a closed form for its FAISS metric, if there is
    one, else its ``pairwise`` function."""
    return _BY_FAISS_METRIC.get(distance.faiss_metric, ExactScores)(distance, gallery)

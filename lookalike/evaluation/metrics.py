"""Retrieval metrics as pure functions of the neighbours' labels (vectorised numpy).

Each function returns one value per query, so blocks of queries can be scored separately
and averaged at the end (``report.evaluate_embeddings``). Definitions follow "A Metric
Learning Reality Check" (Musgrave, Belongie, Lim, ECCV 2020) and pytorch-metric-learning's
``AccuracyCalculator``, against which the tests check them:

- R = number of gallery items that share the query's label (leave-one-out: not counting
  the query itself). Queries with R = 0 can retrieve nothing right; like
  ``AccuracyCalculator`` the report leaves them out of every average, and the R-based
  functions return NaN for them.
- ``knn_labels`` (Q, k) are the gallery labels of each query's neighbours, nearest first.
"""

from __future__ import annotations

import numpy as np

from lookalike.errors import ConfigError, DataError


def _matches(knn_labels: np.ndarray, query_labels: np.ndarray, columns: int) -> np.ndarray:
    """(Q, columns) bool: neighbour j of query i has the query's label."""
    knn_labels, query_labels = np.asarray(knn_labels), np.asarray(query_labels)
    if knn_labels.ndim != 2 or query_labels.shape != (knn_labels.shape[0],):
        raise DataError(
            f"knn_labels must be (Q, k) and query_labels (Q,), got {knn_labels.shape} "
            f"and {query_labels.shape}"
        )
    if columns > knn_labels.shape[1]:
        raise ConfigError(f"need {columns} neighbours per query, knn_labels has "
                          f"{knn_labels.shape[1]}")
    matches: np.ndarray = knn_labels[:, :columns] == query_labels[:, None]
    return matches


def precision_at_k(knn_labels: np.ndarray, query_labels: np.ndarray, k: int) -> np.ndarray:
    """(Q,) share of the first k neighbours with the query's label (P@1 is most papers' R@1).

    Args:
        knn_labels: (Q, >=k) neighbour labels.  query_labels: (Q,).  k: cut-off.
    """
    share: np.ndarray = _matches(knn_labels, query_labels, k).sum(axis=1) / k
    return share


def recall_at_k(knn_labels: np.ndarray, query_labels: np.ndarray, k: int) -> np.ndarray:
    """(Q,) 1.0 where at least one of the first k neighbours has the query's label, else 0.0.

    Args:
        knn_labels: (Q, >=k) neighbour labels.  query_labels: (Q,).  k: cut-off.
    """
    found = np.asarray(_matches(knn_labels, query_labels, k).any(axis=1), dtype=np.float64)
    return found


def _first_r(
    knn_labels: np.ndarray, query_labels: np.ndarray, r: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(Q, max R) hits among each row's first R neighbours, and R as float (Q,) with 0 -> nan."""
    r = np.asarray(r, dtype=np.int64)
    if r.shape != (np.asarray(query_labels).shape[0],) or (r < 0).any():
        raise DataError(f"r must be (Q,) non-negative counts, got shape {r.shape}")
    # Every row is as wide as the table, not as the block's largest R: a sum's rounding
    # depends on its length, and the averages must not depend on how queries are blocked
    width = max(int(r.max(initial=0)), np.asarray(knn_labels).shape[1])
    within = np.arange(width) < r[:, None]  # (Q, max R)
    hits = _matches(knn_labels, query_labels, width) & within
    return hits, np.where(r > 0, r, np.nan)


def r_precision(knn_labels: np.ndarray, query_labels: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(Q,) share of the first R neighbours that are relevant; NaN where R = 0.

    Args:
        knn_labels: (Q, >=max R) neighbour labels.  query_labels: (Q,).
        r: (Q,) R per query (``relevant_counts``).
    """
    hits, r_float = _first_r(knn_labels, query_labels, r)
    share: np.ndarray = hits.sum(axis=1) / r_float
    return share


def map_at_r(knn_labels: np.ndarray, query_labels: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(Q,) MAP@R = (1/R) sum_{i<=R} P(i) rel(i): rewards relevant items ranked first; NaN at R=0.

    P(i) is the precision over the first i neighbours and rel(i) is 1 when neighbour i is
    relevant (Musgrave et al. 2020, eq. 3).

    Args:
        knn_labels: (Q, >=max R) neighbour labels.  query_labels: (Q,).
        r: (Q,) R per query (``relevant_counts``).
    """
    hits, r_float = _first_r(knn_labels, query_labels, r)  # (Q, max R)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)  # P(i)
    average: np.ndarray = (precision * hits).sum(axis=1) / r_float
    return average


def map_at_k(
    knn_labels: np.ndarray, query_labels: np.ndarray, r: np.ndarray, k: int
) -> np.ndarray:
    """(Q,) MAP@k = (1 / min(k, R)) sum_{i<=k} P(i) rel(i): MAP@R cut at a fixed k; NaN at R=0.

    The "mAP@R" that cdluminate/robrank publishes is this metric at k = 10 (its
    ``metric_get_ap_r(..., rs=[10])``), not MAP@R: on Fashion-MNIST's test set R is 999, so
    the two differ by 0.03 or more for the same embeddings (README, "The demo").

    Args:
        knn_labels: (Q, >=k) neighbour labels.  query_labels: (Q,).
        r: (Q,) R per query (``relevant_counts``).  k: cut-off.
    """
    hits = _matches(knn_labels, query_labels, k)  # (Q, k)
    precision = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    r = np.asarray(r, dtype=np.int64)
    denominator = np.where(r > 0, np.minimum(r, k), np.nan)
    average: np.ndarray = (precision * hits).sum(axis=1) / denominator
    return average


def relevant_counts(
    query_labels: np.ndarray, gallery_labels: np.ndarray, *, leave_one_out: bool
) -> np.ndarray:
    """(Q,) R: gallery items with each query's label, minus the query itself in leave-one-out.

    Args:
        query_labels: (Q,).  gallery_labels: (N,); in leave-one-out the queries are in it.
    """
    query_labels = np.asarray(query_labels)
    classes, counts = np.unique(np.asarray(gallery_labels), return_counts=True)
    if len(classes) == 0:
        return np.zeros(len(query_labels), dtype=np.int64)
    where = np.searchsorted(classes, query_labels).clip(max=len(classes) - 1)
    r = np.where(classes[where] == query_labels, counts[where], 0) - int(leave_one_out)
    counted: np.ndarray = np.maximum(r, 0).astype(np.int64)
    return counted

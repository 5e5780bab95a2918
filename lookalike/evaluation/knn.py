"""Exact k-nearest-neighbour search for retrieval metrics: faiss proposes, float64 decides.

A float32 search reorders neighbours whose distances tie or nearly tie (a collapsed
embedding), which moves MAP@R by points (docs/design.md 3). So, per block of queries:

1. every query-gallery score of the block is computed in float64 (``scores.py``: one
   matrix multiply for the built-in distances) over the *distinct* gallery vectors, so
   identical vectors get bit-identical scores (BLAS does not promise that for two copies
   of a row); gathering only the candidates' vectors instead measured slower than this;
2. ``k + extra`` candidates come from faiss in float32 (an exact ``IndexFlat`` with the
   distance's FAISS metric: inner product on L2-normalised vectors for cosine, L2 for the
   Euclidean ones), or with ``backend="torch"`` from ``torch.topk`` on the float64 scores
   (faster for large k, where faiss's selection dominates);
3. candidates are sorted by (float64 distance, gallery index): ties go to the lower index;
4. the k kept are checked against the whole float64 row: if any non-candidate beats the
   k-th (a tie group or a float32 near-tie cut at the boundary), that query's row is
   sorted in full instead. The result is the exact float64 ranking, whatever the
   candidates were.

Neighbours are ranked by a registered distance (lookalike.distances), the one the model
was trained with, and reported in its unit.

Memory is O(block * gallery) for the float64 scores; the block size keeps it near 64 MB.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import NamedTuple

import numpy as np
import torch

from lookalike.distances import Distance, get_distance
from lookalike.errors import ConfigError, DataError
from lookalike.evaluation.scores import exact_scores

BACKENDS = ("faiss", "torch")
_BLOCK_ELEMENTS = 1 << 23  # float64 scores held per block: 64 MB


class KnnBlock(NamedTuple):
    """The neighbours of queries ``start .. start + len(indices)``, nearest first."""

    start: int
    distances: np.ndarray  # (C, k) float64, in the distance's unit
    indices: np.ndarray  # (C, k) int64 gallery rows


def _import_faiss() -> ModuleType:
    try:
        import faiss
    except ImportError as err:
        raise ImportError("retrieval evaluation needs faiss: pip install faiss-cpu") from err
    return faiss


def _as_matrix(x: object, name: str, unit_vectors: bool) -> np.ndarray:
    """(N, D) float64 copy, L2-normalised when the distance needs unit vectors (cosine);
    rejects NaN/inf and wrong shapes."""
    array = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if array.ndim != 2 or array.shape[1] == 0:
        raise DataError(f"{name} must be a 2-D (N, D) array, got shape {array.shape}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise DataError(f"{name} contains NaN or inf values")
    if unit_vectors:
        array /= np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)
    return array


def iter_knn(
    query: object,
    k: int,
    gallery: object | None = None,
    *,
    exclude: np.ndarray | None = None,
    distance: str | Distance = "euclidean",
    chunk_size: int | None = None,
    backend: str = "faiss",
) -> Iterator[KnnBlock]:
    """Yield the exact k nearest gallery items of each query, one block of queries at a time.

    Args:
        query: (Q, D) numpy array or tensor.
        k: neighbours per query.
        gallery: (N, D), or None for leave-one-out: the gallery is ``query`` and each
            query drops itself (by index, wherever it ranks, so duplicates are safe).
        exclude: (Q,) int gallery row each query must not return (-1: none); leave-one-out
            over a subset of the gallery passes the queries' own rows here.
        distance: a registered distance name (or a ``Distance``): what "nearest" means,
            and the unit of the distances returned.
        chunk_size: queries per block; default keeps the float64 block near 64 MB.
        backend: where candidates come from, "faiss" (float32) or "torch" (topk on the
            float64 scores); the final ranking is the same.
    """
    measure = get_distance(distance)
    if backend not in BACKENDS:
        raise ConfigError(f"unknown k-NN backend {backend!r}; choose one of {BACKENDS}")
    q = _as_matrix(query, "query embeddings", measure.unit_vectors)
    g = q if gallery is None else _as_matrix(gallery, "gallery embeddings", measure.unit_vectors)
    if q.shape[1] != g.shape[1]:
        raise DataError(f"query dimension {q.shape[1]} != gallery dimension {g.shape[1]}")
    if gallery is None:
        exclude = np.arange(len(q))
    elif exclude is not None:
        exclude = np.asarray(exclude, dtype=np.int64)
        if exclude.shape != (len(q),):
            raise DataError(f"exclude must have shape ({len(q)},), got {exclude.shape}")
    available = len(g) - (exclude is not None)
    if not 1 <= k <= available:
        raise ConfigError(f"k={k} is outside 1..{available} (the gallery items per query)")
    if chunk_size is not None and chunk_size < 1:
        raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
    if backend == "faiss":
        faiss = _import_faiss()
        index = faiss.IndexFlat(g.shape[1], measure.faiss_metric_type())
        index.add(np.ascontiguousarray(g, dtype=np.float32))
    unique, inverse_rows = np.unique(g, axis=0, return_inverse=True)
    inverse: np.ndarray | None = inverse_rows.ravel()
    if len(unique) == len(g):  # no duplicates: score the gallery as is
        unique, inverse = g, None
    scores = exact_scores(measure, unique)  # float64 rank keys, smaller = closer
    n_candidates = min(k + (exclude is not None) + 8 + k // 64, len(g))
    step = chunk_size or max(1, min(len(q), _BLOCK_ELEMENTS // len(g)))
    for start in range(0, len(q), step):
        block = q[start : start + step]  # (C, D)
        key = scores.key(block)  # (C, U) float64
        key = key if inverse is None else key[:, inverse]  # (C, N)
        if exclude is not None:
            own = exclude[start : start + step]
            rows = np.flatnonzero(own >= 0)
            key[rows, own[rows]] = np.inf
        if backend == "faiss":
            block32 = np.ascontiguousarray(block, dtype=np.float32)
            candidates = index.search(block32, n_candidates)[1].astype(np.int64)  # (C, k')
        else:
            candidates = torch.topk(torch.from_numpy(key), n_candidates, dim=1,
                                    largest=False).indices.numpy()  # sorted: cheap argsort below
        top, best = _exact_top_k(key, candidates, k)  # (C, k) each
        yield KnnBlock(start, scores.distances(best, block), top)


def _gather(matrix: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``matrix[i, columns[i, j]]`` for (C, N) matrix and (C, m) columns (flat take: fast)."""
    offsets = np.arange(len(matrix))[:, None] * matrix.shape[1]
    gathered: np.ndarray = np.take(matrix.reshape(-1), columns + offsets)
    return gathered


def _exact_top_k(
    key: np.ndarray, candidates: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest (key, index) per row of key (C, N), and their keys, from candidates."""
    candidate_key = _gather(key, candidates)  # (C, k'), faiss order: nearly sorted already
    order = np.argsort(candidate_key, axis=1, kind="stable")
    sorted_key = np.take_along_axis(candidate_key, order, axis=1)[:, : k + 1]
    tied = (np.diff(sorted_key, axis=1) == 0).any(axis=1)  # exact ties: order them by index
    if tied.any():
        order[tied] = np.lexsort((candidates[tied], candidate_key[tied]), axis=-1)
    top = np.take_along_axis(candidates, order[:, :k], axis=1)  # (C, k)
    best = np.take_along_axis(candidate_key, order[:, :k], axis=1)
    if candidates.shape[1] < key.shape[1]:  # items faiss left out: check none beats the k-th
        kth_key = best[:, -1:]  # (C, 1)
        doubt = np.flatnonzero(np.count_nonzero(key <= kth_key, axis=1) != k)
        if len(doubt):  # a tie at the k-th, or a left-out item closer than it
            sub, kth = key[doubt], kth_key[doubt]
            beats = (sub < kth) | ((sub == kth) & (np.arange(key.shape[1]) < top[doubt, -1:]))
            wrong = doubt[beats.sum(axis=1) != k - 1]
            top[wrong] = np.argsort(key[wrong], axis=1, kind="stable")[:, :k]
            best[wrong] = _gather(key[wrong], top[wrong])
    return top, best


def knn_search(
    query: object,
    k: int,
    gallery: object | None = None,
    *,
    exclude: np.ndarray | None = None,
    distance: str | Distance = "euclidean",
    chunk_size: int | None = None,
    backend: str = "faiss",
) -> tuple[np.ndarray, np.ndarray]:
    """All of ``iter_knn`` at once: (Q, k) float64 distances and (Q, k) int64 indices."""
    blocks = list(iter_knn(query, k, gallery, exclude=exclude, distance=distance,
                           chunk_size=chunk_size, backend=backend))
    return (np.concatenate([b.distances for b in blocks]),
            np.concatenate([b.indices for b in blocks]))

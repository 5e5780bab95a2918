"""The FAISS side of a search index: build, shrink and tune it through its kind.

The kinds (flat, hnsw, ivf, and any registered later) live in ``lookalike.search.kinds``;
the FAISS metric comes from the model's distance (``lookalike.distances``), so an index
ranks exactly as the model was trained to, and reports distances in that unit.
"""

from __future__ import annotations

import faiss
import numpy as np

from lookalike.distances import Distance, get_distance
from lookalike.search.idmap import (
    as_vectors,
    inner_index,
    stored_ids,
    stored_vectors,
    vectors_of,
)
from lookalike.search.spec import IndexSpec

__all__ = ["as_vectors", "build_vector_index", "configure_search", "for_distance",
           "inner_index", "remove_vectors", "stored_ids", "stored_vectors", "vectors_of"]


def for_distance(vectors: np.ndarray, distance: str | Distance) -> np.ndarray:
    """(N, D) float32 vectors as the distance's FAISS metric needs them: L2-normalised for a
    distance with ``unit_vectors`` (cosine as an inner product), else as they are."""
    if not get_distance(distance).unit_vectors:
        return vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def build_vector_index(vectors: np.ndarray, ids: np.ndarray, spec: IndexSpec,
                       distance: str | Distance) -> faiss.IndexIDMap2:
    """A FAISS index over ``vectors`` (N, D) float32 whose search answers ``ids`` (N,),
    searching by ``distance``'s FAISS metric."""
    measure = get_distance(distance)
    spec = spec.resolved(len(vectors))
    return spec.index_kind.build(for_distance(vectors, measure), ids,
                                 measure.faiss_metric_type(), spec)


def remove_vectors(index: faiss.IndexIDMap2, ids: np.ndarray,
                   spec: IndexSpec) -> faiss.IndexIDMap2:
    """The index without ``ids``, the way its kind removes (in place, refilled or rebuilt)."""
    return spec.index_kind.remove(index, np.asarray(ids, dtype=np.int64), spec)


def configure_search(index: faiss.IndexIDMap2, spec: IndexSpec) -> None:
    """Apply the spec's search-time options to a built or loaded index (its kind knows
    which: ``ef_search``, ``nprobe``...)."""
    spec.index_kind.configure(inner_index(index), spec)

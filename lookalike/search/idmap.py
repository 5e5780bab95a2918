"""Id-mapped FAISS indexes: vectors stored under the items' ids, and reading them back.

Every index kind sits under an ``IndexIDMap2``, so search answers ids, not positions, and
ids survive removals. These helpers know nothing of the kind underneath.
"""

from __future__ import annotations

from typing import Any, cast

import faiss
import numpy as np

from lookalike.errors import DataError


def as_vectors(vectors: Any, dim: int | None = None) -> np.ndarray:
    """(N, D) float32 C-contiguous array, checked for shape and finite values."""
    array = vectors.detach().cpu().numpy() if hasattr(vectors, "detach") else np.asarray(vectors)
    if array.ndim != 2 or (dim is not None and array.shape[1] != dim):
        want = f"(N, {dim})" if dim is not None else "(N, D)"
        raise DataError(f"vectors must have shape {want}, got {array.shape}")
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise DataError(f"{int(bad.sum())} of {len(array)} vectors hold NaN or infinite values "
                        f"(the first: row {int(np.flatnonzero(bad)[0])})")
    return np.ascontiguousarray(array, dtype=np.float32)


def disown(index: faiss.Index) -> None:
    """Leave freeing ``index`` to the FAISS object that now holds it (SWIG's ``this``)."""
    cast(Any, index).this.disown()


def with_ids(inner: faiss.Index, vectors: np.ndarray, ids: np.ndarray) -> faiss.IndexIDMap2:
    """``inner`` (trained, empty) under an id map that owns it, holding ``vectors`` as ``ids``."""
    index = faiss.IndexIDMap2(inner)
    index.own_fields = True
    disown(inner)
    if len(vectors):
        index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
    return index


def clone(index: faiss.IndexIDMap2) -> faiss.IndexIDMap2:
    """A deep copy to change while searches go on in the original."""
    return cast(faiss.IndexIDMap2, faiss.clone_index(index))


def inner_index(index: faiss.IndexIDMap2) -> faiss.Index:
    """The bare FAISS index under the id map (what a raw FAISS user would build)."""
    return faiss.downcast_index(index.index)


def stored_ids(index: faiss.IndexIDMap2) -> np.ndarray:
    """(N,) int64: the id of each stored vector, in storage order."""
    return faiss.vector_to_array(index.id_map).astype(np.int64, copy=False)


def stored_vectors(index: faiss.IndexIDMap2) -> np.ndarray:
    """(N, D) float32: every stored vector, in storage order (same order as ``stored_ids``).

    The index must be readable by position: its kind's ``configure`` (run on every index
    that is built or opened) makes it so where the kind needs it (IVF's direct map).
    """
    inner = inner_index(index)
    if inner.ntotal == 0:
        return np.zeros((0, inner.d), dtype=np.float32)
    # An explicit numpy buffer: faiss.contrib.torch_utils (imported by pytorch-metric-learning)
    # patches faiss to return torch tensors when no buffer is given.
    out = np.empty((inner.ntotal, inner.d), dtype=np.float32)
    inner.reconstruct_n(0, inner.ntotal, out)
    return out


def vectors_of(index: faiss.IndexIDMap2, ids: np.ndarray) -> np.ndarray:
    """(K, D) float32: the stored vectors of items ``ids`` (which must exist)."""
    out = np.empty((len(ids), index.d), dtype=np.float32)
    for row, item_id in enumerate(np.asarray(ids, dtype=np.int64).tolist()):
        index.reconstruct(item_id, out[row])
    return out

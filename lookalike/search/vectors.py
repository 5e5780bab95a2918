"""The FAISS side of a search index: which index type, how to build, grow, shrink, search.

Vectors carry the items' ids (``IndexIDMap2``), so search answers ids, not positions, and
ids survive removals. Three kinds:

- ``flat``: exact search, one matrix multiply per query batch; the default up to
  ``AUTO_APPROXIMATE_ABOVE`` items, where a single query still takes a few milliseconds.
- ``hnsw``: a graph index (``IndexHNSWFlat``); fast single queries on large collections,
  recall tunable with ``ef_search``; removing items rebuilds the graph.
- ``ivf``: an inverted file (``IndexIVFFlat``) with ``nlist`` k-means cells trained at build
  time, searching ``nprobe`` of them; removing items refills the trained cells.

Unit-norm embeddings (lookalike's default) are searched by inner product and reported as
Euclidean distances, ``d = sqrt(2 - 2 cos)``, the distance the model was trained with;
un-normalised ones are searched by L2 and reported as ``sqrt`` of FAISS's squared L2.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import faiss
import numpy as np

from lookalike.errors import ConfigError, DataError

KINDS = ("auto", "flat", "hnsw", "ivf")
METRICS = ("ip", "l2")
IVF_TRAIN_PER_CELL = 64
AUTO_APPROXIMATE_ABOVE = 250_000
"""``kind="auto"`` builds an exact index up to this many items and HNSW above it."""


@dataclass(frozen=True)
class IndexSpec:
    """How to build the vector index.

    Attributes:
        kind: "flat" (exact), "hnsw", "ivf", or "auto" (flat up to
            ``AUTO_APPROXIMATE_ABOVE`` items, else hnsw).
        hnsw_m: HNSW graph degree (memory and recall grow with it).
        ef_construction: HNSW build-time beam width.
        ef_search: HNSW search-time beam width (recall vs speed).
        nlist: IVF cells; 0 picks ``4 * sqrt(N)``.
        nprobe: IVF cells visited per query (recall vs speed).
    """

    kind: str = "auto"
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    nlist: int = 0
    nprobe: int = 16

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown index kind {self.kind!r}: expected one of {KINDS}")
        for name in ("hnsw_m", "ef_construction", "ef_search", "nprobe"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.nlist < 0:
            raise ConfigError(f"nlist must be >= 0 (0: automatic), got {self.nlist}")

    def resolved(self, n: int) -> IndexSpec:
        """The spec with ``auto`` replaced by the kind chosen for ``n`` items."""
        if self.kind != "auto":
            return self
        kind = "flat" if n <= AUTO_APPROXIMATE_ABOVE else "hnsw"
        return IndexSpec(**{**asdict(self), "kind": kind})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> IndexSpec:
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


def as_vectors(vectors: Any, dim: int | None = None) -> np.ndarray:
    """(N, D) float32 C-contiguous array, checked for shape and finite values."""
    array = vectors.detach().cpu().numpy() if hasattr(vectors, "detach") else np.asarray(vectors)
    if array.ndim != 2 or (dim is not None and array.shape[1] != dim):
        want = f"(N, {dim})" if dim is not None else "(N, D)"
        raise DataError(f"vectors must have shape {want}, got {array.shape}")
    if not np.isfinite(array).all():
        raise DataError("vectors contain NaN or infinite values")
    return np.ascontiguousarray(array, dtype=np.float32)


def _faiss_metric(metric: str) -> int:
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}: expected one of {METRICS}")
    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


def _empty_inner(spec: IndexSpec, dim: int, faiss_metric: int, n: int) -> faiss.Index:
    """An untrained, empty index of the spec's (resolved) kind."""
    if spec.kind == "flat":
        return faiss.IndexFlat(dim, faiss_metric)
    if spec.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, spec.hnsw_m, faiss_metric)
        index.hnsw.efConstruction = spec.ef_construction
        index.hnsw.efSearch = spec.ef_search
        return index
    nlist = spec.nlist or ivf_cells(n)
    quantizer = faiss.IndexFlat(dim, faiss_metric)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss_metric)
    index.own_fields = True  # the IVF index frees its quantizer
    quantizer.this.disown()
    index.nprobe = spec.nprobe
    return index


def ivf_cells(n: int) -> int:
    """Default IVF cell count: ``4 sqrt(N)``, at most N / 39 (FAISS wants 39 points a cell)."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), n // 39))


def build_vector_index(vectors: np.ndarray, ids: np.ndarray, spec: IndexSpec,
                       metric: str) -> faiss.IndexIDMap2:
    """A FAISS index over ``vectors`` (N, D) float32 whose search answers ``ids`` (N,)."""
    spec = spec.resolved(len(vectors))
    inner = _empty_inner(spec, vectors.shape[1], _faiss_metric(metric), len(vectors))
    if not inner.is_trained:
        if len(vectors) == 0:
            raise DataError("an IVF index needs vectors to train its cells")
        train = vectors
        # 64 points a cell: k-means costs a quarter of FAISS's 256 (its default cap) and
        # stays above the 39 it asks for; recall is measured in bench/search.py
        limit = IVF_TRAIN_PER_CELL * inner.nlist
        if len(vectors) > limit:
            rows = np.random.default_rng(0).choice(len(vectors), limit, replace=False)
            train = vectors[np.sort(rows)]
        inner.train(train)
    return _with_ids(inner, vectors, ids)


def _with_ids(inner: faiss.Index, vectors: np.ndarray, ids: np.ndarray) -> faiss.IndexIDMap2:
    """``inner`` (trained, empty) under an id map that owns it, holding ``vectors`` as ``ids``."""
    index = faiss.IndexIDMap2(inner)
    index.own_fields = True
    inner.this.disown()
    if len(vectors):
        index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
    return index


def index_kind(index: faiss.Index) -> str:
    """"flat", "hnsw" or "ivf": what a (possibly ID-mapped) index is underneath."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(inner, faiss.IndexIVF):
        return "ivf"
    return "flat"


def inner_index(index: faiss.IndexIDMap2) -> faiss.Index:
    """The bare FAISS index under the id map (what a raw FAISS user would build)."""
    return faiss.downcast_index(index.index)


def stored_ids(index: faiss.IndexIDMap2) -> np.ndarray:
    """(N,) int64: the id of each stored vector, in storage order."""
    return faiss.vector_to_array(index.id_map).astype(np.int64, copy=False)


def stored_vectors(index: faiss.IndexIDMap2) -> np.ndarray:
    """(N, D) float32: every stored vector, in storage order (same order as ``stored_ids``)."""
    inner = inner_index(index)
    if inner.ntotal == 0:
        return np.zeros((0, inner.d), dtype=np.float32)
    if isinstance(inner, faiss.IndexIVF) and inner.direct_map.type == faiss.DirectMap.NoMap:
        inner.make_direct_map()  # IVF vectors sit in their cells; the map finds them
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


def remove_vectors(index: faiss.IndexIDMap2, ids: np.ndarray,
                   spec: IndexSpec) -> faiss.IndexIDMap2:
    """The index without ``ids``: in place for flat, rebuilt for HNSW and IVF.

    HNSW graphs cannot drop nodes and FAISS's id map cannot follow IVF's removals, so those
    are rebuilt from the remaining vectors (IVF keeps its trained cells).
    """
    remove = np.asarray(ids, dtype=np.int64)
    kind = index_kind(index)
    if kind == "flat":
        index.remove_ids(remove)
        return index
    keep_ids = stored_ids(index)
    keep = ~np.isin(keep_ids, remove)
    vectors = stored_vectors(index)[keep]
    if kind == "hnsw":
        inner = _empty_inner(replace(spec, kind="hnsw"), index.d, index.metric_type,
                             len(vectors))
    else:
        inner = faiss.clone_index(inner_index(index))
        inner.reset()  # keeps the trained cells
    return _with_ids(inner, vectors, keep_ids[keep])


def scores_to_distances(scores: np.ndarray, metric: str) -> np.ndarray:
    """FAISS scores -> Euclidean distances (inner product of unit vectors, or squared L2)."""
    scores = scores.astype(np.float32, copy=False)
    if metric == "ip":
        return np.sqrt(np.maximum(2.0 - 2.0 * scores, 0.0))
    return np.sqrt(np.maximum(scores, 0.0))


def configure_search(index: faiss.Index, spec: IndexSpec) -> None:
    """Apply the spec's search-time knobs (``ef_search``, ``nprobe``) to a loaded index, and
    give IVF its direct map so that stored vectors can be read back by id."""
    inner = inner_index(index) if isinstance(index, faiss.IndexIDMap2) else index
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = spec.ef_search
    elif isinstance(inner, faiss.IndexIVF):
        inner.nprobe = spec.nprobe
        if inner.direct_map.type == faiss.DirectMap.NoMap:
            inner.make_direct_map()

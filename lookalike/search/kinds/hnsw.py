"""``hnsw``: a graph index (``IndexHNSWFlat``) for fast single queries on large collections.

Recall is tuned with ``ef_search`` (per session too); removing items rebuilds the graph,
which cannot drop nodes (the base class's default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import faiss

from lookalike.search.kinds.base import IndexKind, KindOption

if TYPE_CHECKING:
    from lookalike.search.spec import IndexSpec


class HNSW(IndexKind):
    name = "hnsw"
    summary = "approximate, graph"
    options = (
        KindOption("hnsw_m", 32, "HNSW graph degree (memory and recall grow with it)"),
        KindOption("ef_construction", 80, "HNSW build beam width"),
        KindOption("ef_search", 64, "HNSW search beam width (recall vs speed)",
                   at_search=True),
    )

    def create(self, dim: int, metric: int, n: int, spec: IndexSpec) -> faiss.Index:
        index = faiss.IndexHNSWFlat(dim, spec.get("hnsw_m"), metric)
        index.hnsw.efConstruction = spec.get("ef_construction")
        index.hnsw.efSearch = spec.get("ef_search")
        return index

    def configure(self, inner: faiss.Index, spec: IndexSpec) -> None:
        cast(faiss.IndexHNSW, inner).hnsw.efSearch = spec.get("ef_search")

"""``flat``: exact search, one matrix multiply per query batch.

The default up to ``AUTO_APPROXIMATE_ABOVE`` items, where a single query still takes a
few milliseconds; removal works in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import faiss
import numpy as np

from lookalike.search.kinds.base import IndexKind

if TYPE_CHECKING:
    from lookalike.search.spec import IndexSpec


class Flat(IndexKind):
    name = "flat"
    summary = "exact"

    def create(self, dim: int, metric: int, n: int, spec: IndexSpec) -> faiss.Index:
        return faiss.IndexFlat(dim, metric)

    def remove(self, index: faiss.IndexIDMap2, ids: np.ndarray,
               spec: IndexSpec) -> faiss.IndexIDMap2:
        # faiss's Python wrapper takes an id array here (its stubs know only IDSelector)
        cast(Any, index).remove_ids(np.asarray(ids, dtype=np.int64))
        return index

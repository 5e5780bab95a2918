"""``ivf``: an inverted file (``IndexIVFFlat``) of k-means cells, searching ``nprobe`` of them.

``nlist`` cells are trained at build time on a sample of the vectors; removing items keeps
the trained cells and refills them (FAISS's id map cannot follow IVF's own removals).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import faiss
import numpy as np

from lookalike.errors import DataError
from lookalike.search.idmap import disown
from lookalike.search.kinds.base import IndexKind, KindOption

if TYPE_CHECKING:
    from lookalike.search.spec import IndexSpec

TRAIN_PER_CELL = 64
"""k-means points a cell: a quarter of FAISS's 256 (its default cap) and above the 39 it
asks for; recall is measured in bench/search.py."""


def ivf_cells(n: int) -> int:
    """Default IVF cell count: ``4 sqrt(N)``, at most N / 39 (FAISS wants 39 points a cell)."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), n // 39))


class IVF(IndexKind):
    name = "ivf"
    summary = "approximate, k-means cells"
    options = (
        KindOption("nlist", 0, "IVF cells; 0 picks 4 * sqrt(N)", minimum=0),
        KindOption("nprobe", 16, "IVF cells searched per query", at_search=True),
    )

    def create(self, dim: int, metric: int, n: int, spec: IndexSpec) -> faiss.Index:
        nlist = spec.get("nlist") or ivf_cells(n)
        quantizer = faiss.IndexFlat(dim, metric)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, metric)
        index.own_fields = True  # the IVF index frees its quantizer
        disown(quantizer)
        index.nprobe = spec.get("nprobe")
        return index

    def train(self, inner: faiss.Index, vectors: np.ndarray) -> None:
        if len(vectors) == 0:
            raise DataError("an IVF index needs vectors to train its cells")
        limit = TRAIN_PER_CELL * cast(faiss.IndexIVF, inner).nlist
        if len(vectors) > limit:
            rows = np.random.default_rng(0).choice(len(vectors), limit, replace=False)
            vectors = vectors[np.sort(rows)]
        inner.train(vectors)

    def configure(self, inner: faiss.Index, spec: IndexSpec) -> None:
        ivf = cast(faiss.IndexIVF, inner)
        ivf.nprobe = spec.get("nprobe")
        if ivf.direct_map.no():
            ivf.make_direct_map()  # IVF vectors sit in their cells; the map finds them

    def emptied(self, inner: faiss.Index, spec: IndexSpec, n: int) -> faiss.Index:
        emptied = faiss.clone_index(inner)
        emptied.reset()  # keeps the trained cells
        return emptied

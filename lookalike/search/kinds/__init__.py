"""Index kinds: one file each, registered here (docs/extending.md, "An index kind")."""

from __future__ import annotations

from lookalike.search.kinds.base import IndexKind, KindOption
from lookalike.search.kinds.flat import Flat
from lookalike.search.kinds.hnsw import HNSW
from lookalike.search.kinds.ivf import IVF
from lookalike.search.kinds.registry import (
    INDEX_KINDS,
    get_index_kind,
    kind_options,
    register_index_kind,
)

register_index_kind(Flat())
register_index_kind(HNSW())
register_index_kind(IVF())

__all__ = ["INDEX_KINDS", "IndexKind", "KindOption", "get_index_kind", "kind_options",
           "register_index_kind"]

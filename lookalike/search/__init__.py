"""Search: index a collection with a trained model, query it by image, find duplicates."""

from __future__ import annotations

from lookalike.search.index import Hit, Index, Neighbors, open_data
from lookalike.search.kinds import IndexKind, KindOption, register_index_kind
from lookalike.search.spec import AUTO_APPROXIMATE_ABOVE, IndexSpec, kind_choices
from lookalike.search.store import ItemRecord

__all__ = ["AUTO_APPROXIMATE_ABOVE", "Hit", "Index", "IndexKind", "IndexSpec", "ItemRecord",
           "KindOption", "Neighbors", "kind_choices", "open_data", "register_index_kind"]

"""Search: index a collection with a trained model, query it by image, find duplicates."""

from __future__ import annotations

from lookalike.search.index import Hit, Index, Neighbors, open_data
from lookalike.search.store import ItemRecord
from lookalike.search.vectors import AUTO_APPROXIMATE_ABOVE, KINDS, IndexSpec

__all__ = ["AUTO_APPROXIMATE_ABOVE", "KINDS", "Hit", "Index", "IndexSpec", "ItemRecord",
           "Neighbors", "open_data"]

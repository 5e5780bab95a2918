"""The distance an index folder reports, and how its FAISS scores become that distance.

Folders state the distance of the model that built them (meta ``distance``), and FAISS
searches them by its metric, so ``Distance.from_faiss`` turns scores into distances. Folders
of index format 1 were written before that: they state none, and always reported
Euclidean distances. Their ``metric`` says how FAISS searched them: "l2" (squared L2:
Euclidean is its square root, as now) or "ip" (inner products of the unit vectors a
normalising model made: the Euclidean distance is sqrt(2 - 2 ip)).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lookalike.distances import DISTANCES, Distance, get_distance
from lookalike.errors import SearchIndexError

LEGACY_DISTANCE = "euclidean"


class FolderDistance(NamedTuple):
    """What an index folder's reported distances are, and how to compute them."""

    distance: Distance
    faiss_metric: str  # the FAISS metric its vectors are searched by, e.g. "L2"
    from_faiss: Callable[[np.ndarray], np.ndarray]


def _unit_inner_product_to_euclidean(scores: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(2.0 - 2.0 * scores, 0.0))


def folder_distance(meta: dict[str, Any], folder: Path) -> FolderDistance:
    """The distance of the index folder whose meta table is ``meta``."""
    if "distance" not in meta:  # format 1
        euclidean = get_distance(LEGACY_DISTANCE)
        if meta.get("metric") == "ip":
            return FolderDistance(euclidean, "INNER_PRODUCT", _unit_inner_product_to_euclidean)
        return FolderDistance(euclidean, "L2", euclidean.from_faiss)
    name = str(meta["distance"])
    if name not in DISTANCES:
        raise SearchIndexError(f"{folder} measures distance {name!r}, which is not registered "
                               f"here (registered: {', '.join(DISTANCES.names())})")
    distance = get_distance(name)
    return FolderDistance(distance, distance.faiss_metric, distance.from_faiss)

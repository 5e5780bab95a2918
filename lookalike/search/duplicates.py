"""Groups of near-identical items from a k-NN graph, whichever backend searched it."""

from __future__ import annotations

import math

import numpy as np

from lookalike.errors import ConfigError


def check_duplicate_options(threshold: float, neighbors: int) -> None:
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ConfigError(f"threshold must be a finite distance >= 0, got {threshold}")
    if neighbors < 1:
        raise ConfigError(f"neighbors must be >= 1, got {neighbors}")


def duplicate_groups(ids: np.ndarray, neighbor_ids: np.ndarray, distances: np.ndarray,
                     threshold: float) -> list[list[int]]:
    """Connected components of the graph linking item ``ids[i]`` to each of its neighbours
    ``neighbor_ids[i]`` (-1: none) within ``distances[i] <= threshold``; groups of two or
    more, largest first, ids ascending within a group.

    Args:
        ids: (N,) the items searched. neighbor_ids, distances: (N, k) their neighbours.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(ids)
    order = np.argsort(ids)
    sorted_ids = ids[order]
    at = np.minimum(np.searchsorted(sorted_ids, neighbor_ids), max(n - 1, 0))
    known = (neighbor_ids >= 0) & (sorted_ids[at] == neighbor_ids) if n else neighbor_ids >= 0
    rows, cols = np.nonzero((distances <= threshold) & known)
    cols = order[at[rows, cols]]  # neighbour ids -> positions in ``ids``
    linked = rows != cols
    graph = coo_matrix((np.ones(int(linked.sum())), (rows[linked], cols[linked])),
                       shape=(n, n))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component)
    groups = [np.sort(ids[component == c]).tolist() for c in np.flatnonzero(sizes > 1)]
    return sorted(groups, key=lambda g: (-len(g), g[0]))

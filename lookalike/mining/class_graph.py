"""Which classes look alike: a class graph from the classes of the items' pooled hard negatives.

With many classes the hard cases are whole classes that look alike. The pools already say
which: class d is near class c when c's items find their nearest other-class items in d.
So the weight of the edge c -> d counts, over c's items, the pooled hard negatives that
belong to d (optionally weighted 1 / (1 + rank), so an item's nearest negative counts
most), and each class keeps its heaviest neighbours. Graph Sampling (Liao and Shao, "Graph
Sampling Based Deep Metric Learning for Generalizable Person Re-Identification", CVPR
2022) builds batches from such neighbourhoods, with class centroids instead of pools.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ClassGraph(NamedTuple):
    """Per class, its nearest classes, heaviest first.

    Arrays: neighbours (C, width) int64 class positions, -1 where a class has fewer
    neighbours (no pooled negative landed in more classes); weights (C, width) float64, the
    edge weights, 0 where there is no neighbour.
    """

    neighbours: np.ndarray
    weights: np.ndarray


def class_graph(item_class: np.ndarray, negative_index: np.ndarray, n_classes: int,
                width: int, *, rank_weighted: bool = False) -> ClassGraph:
    """Each class's ``width`` nearest classes by its items' pooled hard negatives.

    Args:
        item_class: (N,) class position (0..C-1) of every item, -1 for items of no class
            (e.g. a singleton class a sampler never draws); such items give and get no edge.
        negative_index: (N, k) pooled hard negatives of every item, hardest first, -1 padded.
        n_classes: C.  width: neighbours kept per class.
        rank_weighted: weigh the j-th negative of an item 1 / (1 + j) instead of 1.
    Returns:
        the graph; ties go to the smaller class position.
    """
    item_class = np.asarray(item_class, dtype=np.int64)
    negatives = np.asarray(negative_index, dtype=np.int64)  # (N, k)
    rank_weight = 1.0 / (1.0 + np.arange(negatives.shape[1])) if rank_weighted \
        else np.ones(negatives.shape[1])
    source = np.broadcast_to(item_class[:, None], negatives.shape)  # (N, k)
    target = np.where(negatives >= 0, item_class[np.maximum(negatives, 0)], -1)  # (N, k)
    edge = (source >= 0) & (target >= 0) & (source != target)
    weights = np.broadcast_to(rank_weight, negatives.shape)[edge]
    key = source[edge] * n_classes + target[edge]  # (E,) one per pooled negative
    pairs, inverse = np.unique(key, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=weights, minlength=len(pairs))  # (U,)
    rows, cols = pairs // n_classes, pairs % n_classes
    order = np.lexsort((cols, -summed, rows))  # by class, heaviest first, then smaller class
    rows, cols, summed = rows[order], cols[order], summed[order]
    starts = np.searchsorted(rows, np.arange(n_classes))  # first edge of each class
    rank = np.arange(len(rows)) - starts[rows]  # position of each edge within its class
    keep = rank < width
    neighbours = np.full((n_classes, width), -1, dtype=np.int64)
    edge_weights = np.zeros((n_classes, width), dtype=np.float64)
    neighbours[rows[keep], rank[keep]] = cols[keep]
    edge_weights[rows[keep], rank[keep]] = summed[keep]
    return ClassGraph(neighbours, edge_weights)

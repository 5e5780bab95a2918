"""The class graph from pooled hard negatives, against a hand-made example and a loop."""

from __future__ import annotations

import numpy as np

from lookalike.mining.class_graph import class_graph


def test_hand_made_pools() -> None:
    # 4 classes of 2 items: items 0-1 class 0, 2-3 class 1, 4-5 class 2, 6-7 class 3
    item_class = np.repeat(np.arange(4), 2)
    negatives = np.array([
        [2, 4, 3],     # class 0: class 1 twice, class 2 once
        [3, 5, -1],    # class 0: class 1, class 2       -> 0: {1: 3, 2: 2}
        [0, 1, -1],    # class 1: class 0 twice
        [6, -1, -1],   # class 1: class 3                -> 1: {0: 2, 3: 1}
        [-1, -1, -1],  # class 2: no pooled negatives
        [-1, -1, -1],
        [4, 0, -1],    # class 3: class 2, class 0 (a tie: the smaller class first)
        [-1, -1, -1],
    ])
    graph = class_graph(item_class, negatives, n_classes=4, width=2)
    assert graph.neighbours.tolist() == [[1, 2], [0, 3], [-1, -1], [0, 2]]
    assert graph.weights.tolist() == [[3, 2], [2, 1], [0, 0], [1, 1]]
    ranked = class_graph(item_class, negatives, n_classes=4, width=3, rank_weighted=True)
    # class 3: item 6 has class 2 at rank 0 (weight 1) and class 0 at rank 1 (weight 1/2)
    assert ranked.neighbours[3].tolist() == [2, 0, -1]
    assert np.allclose(ranked.weights[0], [1 + 1 / 3 + 1, 1 / 2 + 1 / 2, 0])


def test_items_of_no_class_give_and_get_no_edge() -> None:
    item_class = np.array([0, 0, 1, 1, -1])
    negatives = np.array([[4, 2], [4, -1], [4, 0], [-1, -1], [0, 2]])
    graph = class_graph(item_class, negatives, n_classes=2, width=1)
    assert graph.neighbours.tolist() == [[1], [0]]
    assert graph.weights.tolist() == [[1], [1]]


def test_matches_a_plain_loop_on_random_pools() -> None:
    rng = np.random.default_rng(0)
    n, k, classes, width = 300, 6, 17, 5
    item_class = rng.integers(-1, classes, n)
    negatives = np.where(rng.random((n, k)) < 0.2, -1, rng.integers(0, n, (n, k)))
    for rank_weighted in (False, True):
        graph = class_graph(item_class, negatives, classes, width, rank_weighted=rank_weighted)
        for c in range(classes):
            weight = np.zeros(classes)
            for i in np.flatnonzero(item_class == c):
                for j, neg in enumerate(negatives[i]):
                    if neg >= 0 and item_class[neg] >= 0 and item_class[neg] != c:
                        weight[item_class[neg]] += 1 / (1 + j) if rank_weighted else 1
            order = sorted((-w, d) for d, w in enumerate(weight) if w > 0)[:width]
            expected = [d for _, d in order] + [-1] * (width - len(order))
            assert graph.neighbours[c].tolist() == expected
            assert np.allclose(graph.weights[c][: len(order)], [-w for w, _ in order])

"""Metric functions on hand-made neighbour-label tables and against plain loops."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.errors import ConfigError, DataError
from lookalike.evaluation import (
    map_at_k,
    map_at_r,
    precision_at_k,
    r_precision,
    recall_at_k,
    relevant_counts,
)

# query 0 (label 1, R=3): hits 1 0 1 1 -> R-Prec 2/3, MAP@R (1/1 + 2/3) / 3 = 5/9
# query 1 (label 0, R=2): hits 1 1 0 1 -> R-Prec 1,   MAP@R (1 + 1) / 2 = 1
# query 2 (label 2, R=4): hits 0 0 0 1 -> R-Prec 1/4, MAP@R (1/4) / 4 = 1/16
# query 3 (label 3, R=1): hits 0 0 0 0 -> R-Prec 0,   MAP@R 0
KNN = np.array([[1, 0, 1, 1], [0, 0, 1, 0], [5, 5, 1, 2], [0, 1, 2, 0]])
QUERY = np.array([1, 0, 2, 3])
R = np.array([3, 2, 4, 1])


def test_known_answers():
    np.testing.assert_allclose(precision_at_k(KNN, QUERY, 1), [1, 1, 0, 0])
    np.testing.assert_allclose(precision_at_k(KNN, QUERY, 4), [3 / 4, 3 / 4, 1 / 4, 0])
    np.testing.assert_allclose(recall_at_k(KNN, QUERY, 2), [1, 1, 0, 0])
    np.testing.assert_allclose(recall_at_k(KNN, QUERY, 4), [1, 1, 1, 0])
    np.testing.assert_allclose(r_precision(KNN, QUERY, R), [2 / 3, 1, 1 / 4, 0])
    np.testing.assert_allclose(map_at_r(KNN, QUERY, R), [5 / 9, 1, 1 / 16, 0])
    # MAP@2 divides by min(2, R): query 3 (R = 1) by 1, the others by 2
    np.testing.assert_allclose(map_at_k(KNN, QUERY, R, 2), [1 / 2, 1, 0, 0])


def test_map_at_k_is_robranks_map_at_r_with_r_10():
    # robrank's metric_get_ap_r(rs=[10]): sum of P(i) over the hits among the first 10,
    # divided by 10; hits at ranks 1, 3 and 10 of a query with 999 relevant items
    row = np.zeros((1, 12), dtype=int)
    row[0, [0, 2, 9]] = 1
    expected = (1 / 1 + 2 / 3 + 3 / 10) / 10
    assert map_at_k(row, np.array([1]), np.array([999]), 10)[0] == pytest.approx(expected)
    assert map_at_r(row[:, :12], np.array([1]), np.array([12]))[0] != pytest.approx(expected)


def test_map_at_k_over_the_whole_ranking_is_average_precision():
    # all R = 3 relevant items in a ranking of 6, at ranks 2, 3 and 6
    row, label = np.array([[0, 1, 1, 0, 0, 1]]), np.array([1])
    expected = (1 / 2 + 2 / 3 + 3 / 6) / 3
    assert map_at_k(row, label, np.array([3]), 6)[0] == pytest.approx(expected)


def test_map_at_r_rewards_order_that_r_precision_ignores():
    late = np.array([[0, 1, 1]])
    early = np.array([[1, 1, 0]])
    labels, r = np.array([1]), np.array([3])
    assert r_precision(late, labels, r) == r_precision(early, labels, r)
    assert map_at_r(late, labels, r)[0] == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert map_at_r(early, labels, r)[0] == pytest.approx(2 / 3)


def loop_metrics(knn, query, r, k):
    out = []
    for row, label, big_r in zip(knn, query, r, strict=True):
        hits = [int(x == label) for x in row]
        p_at_k = sum(hits[:k]) / k
        recall = float(any(hits[:k]))
        if big_r == 0:
            out.append((p_at_k, recall, np.nan, np.nan, np.nan))
            continue
        r_prec = sum(hits[:big_r]) / big_r
        ap = sum(sum(hits[: i + 1]) / (i + 1) for i in range(big_r) if hits[i]) / big_r
        ap_k = sum(sum(hits[: i + 1]) / (i + 1) for i in range(k) if hits[i]) / min(k, big_r)
        out.append((p_at_k, recall, r_prec, ap, ap_k))
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_plain_loops(seed):
    rng = np.random.default_rng(seed)
    knn = rng.integers(0, 4, size=(50, 30))
    query = rng.integers(0, 4, size=50)
    r = rng.integers(0, 31, size=50)
    expected = loop_metrics(knn, query, r, k=7)
    got = np.stack([precision_at_k(knn, query, 7), recall_at_k(knn, query, 7),
                    r_precision(knn, query, r), map_at_r(knn, query, r),
                    map_at_k(knn, query, r, 7)], axis=1)
    np.testing.assert_allclose(got, expected, equal_nan=True)


def test_r_zero_gives_nan():
    values = map_at_r(np.array([[1, 2]]), np.array([3]), np.array([0]))
    assert np.isnan(values).all() and np.isnan(r_precision(np.array([[1]]), [3], [0])).all()


def test_relevant_counts():
    gallery = np.array([0, 0, 1, 2, 2, 2])
    np.testing.assert_array_equal(
        relevant_counts(np.array([0, 2, 7]), gallery, leave_one_out=False), [2, 3, 0])
    np.testing.assert_array_equal(
        relevant_counts(gallery, gallery, leave_one_out=True), [1, 1, 0, 2, 2, 2])
    assert relevant_counts(np.array(["a"]), np.array([], dtype=str), leave_one_out=False)[0] == 0


def test_too_few_neighbours_for_r_is_an_error():
    with pytest.raises(ConfigError, match="need 5 neighbours"):
        map_at_r(KNN, QUERY, np.array([5, 1, 1, 1]))
    with pytest.raises(DataError):
        precision_at_k(KNN, QUERY[:2], 1)

"""evaluate_embeddings: splits, blocks, small galleries, the result object."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lookalike.errors import ConfigError, DataError
from lookalike.evaluation import RetrievalMetrics, evaluate_embeddings, knn_search


def test_leave_one_out_equals_loops_over_the_neighbour_table(make_clustered, knn_oracle):
    x, labels = make_clustered(0, n=120, noise=2.0)
    metrics = evaluate_embeddings(x, labels, ks=(1, 3))
    _, table = knn_oracle(x, x, 119, "euclidean", exclude=list(range(120)))  # the default
    p1, p3, rec3, rprec, ap, ap3 = [], [], [], [], [], []
    for i, row in enumerate(table):
        hits = [int(labels[j] == labels[i]) for j in row]
        r = sum(labels == labels[i]) - 1
        if r == 0:
            continue
        p1.append(hits[0])
        p3.append(sum(hits[:3]) / 3)
        rec3.append(float(any(hits[:3])))
        rprec.append(sum(hits[:r]) / r)
        ap.append(sum(sum(hits[: j + 1]) / (j + 1) for j in range(r) if hits[j]) / r)
        ap3.append(sum(sum(hits[: j + 1]) / (j + 1) for j in range(3) if hits[j]) / min(3, r))
    assert metrics.num_queries == len(p1) == 119 and metrics.num_skipped == 1
    assert metrics.precision_at_1 == pytest.approx(np.mean(p1))
    assert metrics.precision_at_k[3] == pytest.approx(np.mean(p3))
    assert metrics.recall_at_k[3] == pytest.approx(np.mean(rec3))
    assert metrics.r_precision == pytest.approx(np.mean(rprec))
    assert metrics.map_at_r == pytest.approx(np.mean(ap))
    assert metrics.map_at_k[3] == pytest.approx(np.mean(ap3)) and 1 not in metrics.map_at_k


@pytest.mark.parametrize("chunk_size", [1, 13])
@pytest.mark.parametrize("split", [False, True])
def test_blocks_give_the_same_numbers(chunk_size, split, make_clustered):
    x, labels = make_clustered(1, n=150, noise=2.0)
    mask = (np.arange(150) % 4 == 0) if split else None
    one = evaluate_embeddings(x, labels, query_mask=mask, chunk_size=1000)
    many = evaluate_embeddings(x, labels, query_mask=mask, chunk_size=chunk_size)
    assert many == one


def test_query_mask_equals_explicit_gallery_and_accepts_tensors(make_clustered):
    x, labels = make_clustered(2, n=90)
    mask = np.arange(90) < 30
    by_mask = evaluate_embeddings(x, labels, query_mask=mask, distance="euclidean")
    by_gallery = evaluate_embeddings(torch.from_numpy(x[mask]), torch.from_numpy(labels[mask]),
                                     gallery=(x[~mask], labels[~mask]), distance="euclidean")
    assert by_mask == by_gallery
    assert by_mask.num_queries + by_mask.num_skipped == 30


def test_perfect_and_known_small_case():
    x = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], dtype=np.float32)
    metrics = evaluate_embeddings(x, np.array([0, 0, 1, 1]), ks=(1, 2, 10))
    assert metrics.precision_at_1 == metrics.map_at_r == metrics.r_precision == 1.0
    assert metrics.precision_at_k[2] == 0.5  # the 2nd neighbour is always of the other class
    assert metrics.precision_at_k[10] == pytest.approx(1 / 3)  # k capped at the 3 others
    assert metrics.recall_at_k[10] == 1.0


def test_no_query_with_a_relevant_item_gives_nan():
    metrics = evaluate_embeddings(np.eye(3, dtype=np.float32), np.array([0, 1, 2]))
    assert math.isnan(metrics.map_at_r) and math.isnan(metrics.precision_at_1)
    assert metrics.num_queries == 0 and metrics.num_skipped == 3


def test_to_dict_and_format(make_clustered):
    x, labels = make_clustered(3, n=60)
    metrics = evaluate_embeddings(x, labels, ks=(1, 5))
    flat = metrics.to_dict()
    assert set(flat) == {"precision_at_1", "precision_at_5", "recall_at_1", "recall_at_5",
                         "map_at_5", "r_precision", "map_at_r", "num_queries",
                         "num_skipped"}
    assert flat["map_at_r"] == metrics.map_at_r
    line = metrics.format()
    assert "\n" not in line and f"MAP@R {metrics.map_at_r:.4f}" in line and "P@5" in line
    assert f"MAP@5 {metrics.map_at_k[5]:.4f}" in line
    assert "1 without a relevant item skipped" in line
    assert isinstance(metrics, RetrievalMetrics)


def test_backends_agree(make_clustered):
    x, labels = make_clustered(4, n=100, noise=2.0)
    assert evaluate_embeddings(x, labels) == evaluate_embeddings(x, labels, backend="torch")
    a, b = knn_search(x, 30), knn_search(x, 30, backend="torch")
    np.testing.assert_array_equal(a[1], b[1])


def test_bad_arguments(make_clustered):
    x, labels = make_clustered(0, n=20)
    with pytest.raises(DataError, match="20 embeddings but 19 labels"):
        evaluate_embeddings(x, labels[:19])
    with pytest.raises(ConfigError, match="either query_mask or gallery"):
        evaluate_embeddings(x, labels, query_mask=labels > 0, gallery=(x, labels))
    with pytest.raises(ConfigError, match="ks"):
        evaluate_embeddings(x, labels, ks=(0,))
    with pytest.raises(DataError, match="query_mask must be a bool array"):
        evaluate_embeddings(x, labels, query_mask=np.arange(20))

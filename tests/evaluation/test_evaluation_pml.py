"""Our metrics against pytorch-metric-learning's AccuracyCalculator (the independent check)."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.distances import METRICS
from lookalike.evaluation import evaluate_embeddings

pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

INCLUDE = ("precision_at_1", "r_precision", "mean_average_precision_at_r")


def pml(knn_func, query, query_labels, reference=None, reference_labels=None) -> dict:
    calculator = AccuracyCalculator(include=INCLUDE, k="max_bin_count", device=None,
                                    knn_func=knn_func)
    return calculator.get_accuracy(query, query_labels, reference, reference_labels,
                                   ref_includes_query=False)


def assert_same(ours, theirs) -> None:
    assert ours.precision_at_1 == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours.r_precision == pytest.approx(theirs["r_precision"], abs=1e-6)
    assert ours.map_at_r == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("distance", METRICS)
def test_leave_one_out_matches_pml(seed, distance, make_clustered, pml_exact_knn):
    embeddings, labels = make_clustered(seed, noise=1.5)
    if distance == "cosine":  # PML ranks by L2; on unit vectors that is the cosine ranking
        embeddings = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    ours = evaluate_embeddings(embeddings, labels, distance=distance)
    theirs = pml(pml_exact_knn, embeddings, labels)
    assert_same(ours, theirs)
    assert ours.num_skipped == 1  # the class of one item, as PML leaves it out
    assert 0.2 < ours.map_at_r < 0.95  # informative numbers, not all 0 or 1


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_query_gallery_matches_pml(seed, make_clustered, pml_exact_knn):
    embeddings, labels = make_clustered(seed, n=300, noise=1.5)
    queries = np.arange(len(labels)) % 3 == 0
    labels = labels.copy()
    labels[np.flatnonzero(queries)[0]] = 77  # a query whose class the gallery lacks
    ours = evaluate_embeddings(embeddings, labels, query_mask=queries, distance="euclidean")
    theirs = pml(pml_exact_knn, embeddings[queries], labels[queries],
                 embeddings[~queries], labels[~queries])
    assert_same(ours, theirs)
    assert ours.num_skipped >= 1


def test_matches_pml_with_its_own_faiss_search(make_clustered):
    """No oracle of ours in the loop: PML's default float32 faiss k-NN on separated data."""
    embeddings, labels = make_clustered(7, n=200, noise=1.0)
    ours = evaluate_embeddings(embeddings, labels, distance="euclidean")
    theirs = AccuracyCalculator(include=INCLUDE, k="max_bin_count").get_accuracy(
        embeddings, labels)
    assert_same(ours, theirs)

"""Exact k-NN: against a brute-force loop, in blocks, with duplicates, ties and near-ties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lookalike.distances import METRICS, Distance
from lookalike.errors import ConfigError, DataError
from lookalike.evaluation import evaluate_embeddings, iter_knn, knn_search

BACKENDS = ["faiss", "torch"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("distance", METRICS)
def test_leave_one_out_matches_loop(distance, backend, make_clustered, knn_oracle):
    x, _ = make_clustered(0, n=80, dim=8)
    distances, indices = knn_search(x, 20, distance=distance, backend=backend)
    want_d, want_i = knn_oracle(x, x, 20, distance, exclude=list(range(80)))
    np.testing.assert_array_equal(indices, want_i)
    np.testing.assert_allclose(distances, want_d, atol=1e-9)


@pytest.mark.parametrize("distance", METRICS)
def test_query_gallery_matches_loop(distance, make_clustered, knn_oracle):
    x, _ = make_clustered(1, n=90, dim=8)
    distances, indices = knn_search(x[:30], 12, x[30:], distance=distance)
    want_d, want_i = knn_oracle(x[:30], x[30:], 12, distance)
    np.testing.assert_array_equal(indices, want_i)
    np.testing.assert_allclose(distances, want_d, atol=1e-9)


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_blocks_equal_one_block(chunk_size, make_clustered):
    x, _ = make_clustered(2, n=100)
    whole = knn_search(x, 15, chunk_size=1000)
    blocks = list(iter_knn(x, 15, chunk_size=chunk_size))
    assert [b.start for b in blocks] == list(range(0, 100, chunk_size))
    np.testing.assert_array_equal(np.concatenate([b.indices for b in blocks]), whole[1])
    # BLAS rounds a 1-row and a 64-row product differently in the last bits; ranks agree
    np.testing.assert_allclose(np.concatenate([b.distances for b in blocks]), whole[0],
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicates_drop_self_wherever_it_ranks(backend):
    rng = np.random.default_rng(3)
    base = rng.normal(size=(5, 6)).astype(np.float32)
    x = np.repeat(base, 8, axis=0)[rng.permutation(40)]  # 5 vectors, 8 copies each
    _, indices = knn_search(x, 7, distance="euclidean", backend=backend)
    for i, row in enumerate(indices):
        copies = [j for j in range(40) if j != i and np.array_equal(x[j], x[i])]
        assert i not in row
        assert row.tolist() == copies  # the other 7 copies, at distance 0, by index


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_go_to_the_lower_index_even_when_the_search_cuts_them(backend):
    rng = np.random.default_rng(4)
    same = np.tile(rng.normal(size=(1, 4)), (300, 1))  # 300 identical vectors: one tie group
    x = np.concatenate([rng.normal(size=(50, 4)) + 10.0, same]).astype(np.float32)
    query = same[:1] + 0.01  # nearest to the tie group; far from the rest
    distances, indices = knn_search(query, 5, x, distance="euclidean", backend=backend)
    assert indices[0].tolist() == [50, 51, 52, 53, 54]
    assert np.all(distances[0] == distances[0, 0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("distance", METRICS)
def test_float64_breaks_float32_near_ties(distance, backend):
    """A collapsed cluster, equal in float32 but not in float64: ranked by float64 distance."""
    rng = np.random.default_rng(5)
    base, towards = rng.normal(size=8), rng.normal(size=8)
    towards /= np.linalg.norm(towards)
    steps = rng.permutation(40) * 1e-10  # far below float32 resolution, far above float64's
    x = base + steps[:, None] * towards  # moving towards the query: larger step = nearer
    assert len(np.unique(x.astype(np.float32), axis=0)) <= 2
    query = (base + towards)[None, :]
    _, indices = knn_search(query, 30, x, distance=distance, backend=backend)
    np.testing.assert_array_equal(indices[0], np.argsort(-steps)[:30])


def test_exclude_and_torch_inputs(make_clustered, knn_oracle):
    x, _ = make_clustered(6, n=60, dim=8)
    own = np.array([3, -1, 10])
    _, indices = knn_search(torch.from_numpy(x[own.clip(0)]), 5, torch.from_numpy(x),
                            exclude=own, distance="cosine")
    _, want = knn_oracle(x[own.clip(0)], x, 5, "cosine", exclude=own.tolist())
    np.testing.assert_array_equal(indices, want)
    assert indices[1, 0] == 0  # no exclusion: the query finds itself


def test_bad_arguments(make_clustered):
    x, _ = make_clustered(0, n=20)
    with pytest.raises(ConfigError, match="k=20 is outside"):
        knn_search(x, 20)
    with pytest.raises(ConfigError, match="unknown distance 'manhattan'; choose one of"):
        knn_search(x, 3, distance="manhattan")
    with pytest.raises(DataError, match="NaN"):
        knn_search(np.full((4, 2), np.nan), 1)
    with pytest.raises(DataError, match="dimension"):
        knn_search(x, 3, x[:, :4])


# -- a distance registered from outside: ranked by its own pairwise function ------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_registered_toy_distance_ranks_exactly(backend, registered_manhattan: Distance,
                                                 make_clustered, knn_oracle):
    x, _ = make_clustered(8, n=70, dim=6)
    distances, indices = knn_search(x, 9, distance="manhattan", backend=backend)
    want_d, want_i = knn_oracle(x, x, 9, "manhattan", exclude=list(range(70)))
    np.testing.assert_array_equal(indices, want_i)
    np.testing.assert_allclose(distances, want_d, atol=1e-9)
    # the same object works unregistered-by-name too, and ranks differently from L2 here
    _, by_object = knn_search(x, 9, distance=registered_manhattan, backend=backend)
    np.testing.assert_array_equal(by_object, indices)
    assert not np.array_equal(knn_search(x, 9, distance="euclidean")[1], indices)


def test_a_registered_toy_distance_evaluates(registered_manhattan: Distance, make_clustered,
                                            knn_oracle):
    x, labels = make_clustered(9, n=90, noise=2.0)
    metrics = evaluate_embeddings(x, labels, distance="manhattan", ks=(1,))
    _, table = knn_oracle(x, x, 1, "manhattan", exclude=list(range(90)))
    scored = [i for i in range(90) if (labels == labels[i]).sum() > 1]
    assert metrics.precision_at_1 == pytest.approx(
        np.mean([labels[table[i, 0]] == labels[i] for i in scored]))

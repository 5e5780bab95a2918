"""Offline pools: the blocked miner equals the full-matrix oracle, which equals a plain loop."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from lookalike.errors import ConfigError, DataError
from lookalike.mining import candidates, faiss_negatives, pool_search
from lookalike.mining.pool_search import mine_pools
from lookalike.mining.pools import PoolConfig, Pools

from ..oracles.pools import mine_pools_naive

SKIPS = PoolConfig(hard_positives=3, hard_negatives=4, positive_band=0.2, negative_band=0.05,
                   skip_hardest=2)


def assert_same_pools(fast: Pools, naive: Pools) -> None:
    """Index arrays identical, distances equal to 1e-5 (both exact float64 stored as float32)."""
    for kind in ("positive", "negative"):
        np.testing.assert_array_equal(getattr(fast, f"{kind}_index"),
                                      getattr(naive, f"{kind}_index"), err_msg=kind)
        np.testing.assert_allclose(getattr(fast, f"{kind}_distance"),
                                   getattr(naive, f"{kind}_distance"), rtol=1e-5, atol=1e-5)


def loop_pools(x: np.ndarray, y: np.ndarray, config: PoolConfig) -> tuple[list, list]:
    """Plain-Python definition: sort each anchor's candidates, skip, take k, pad with -1."""
    d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)
    if config.distance == "squared_euclidean":
        d = d**2
    elif config.distance == "cosine":
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1.0 - unit @ unit.T
    pos, neg = [], []
    for i in range(len(x)):
        for positive, k, out in ((True, config.hard_positives, pos),
                                 (False, config.hard_negatives, neg)):
            cands = [j for j in range(len(x)) if j != i and (y[j] == y[i]) == positive]
            cands.sort(key=lambda j: (-d[i, j] if positive else d[i, j], j))
            band = config.positive_band if positive else config.negative_band
            skip = max(config.skip_hardest, math.floor(band * len(cands) + 1e-9))
            skip = min(skip, max(len(cands) - 1, 0))
            chosen = cands[skip:skip + k]
            out.append(chosen + [-1] * (k - len(chosen)))
    return pos, neg


@pytest.mark.parametrize("metric", ["euclidean", "squared_euclidean", "cosine"])
@pytest.mark.parametrize("config", [PoolConfig(hard_positives=2, hard_negatives=3), SKIPS],
                         ids=["plain", "skip"])
def test_naive_oracle_equals_python_loop(clusters, metric: str, config: PoolConfig) -> None:
    x, y = clusters([1, 2, 4, 7, 12], dim=3, seed=4)
    config = replace(config, distance=metric)
    pos, neg = loop_pools(x.astype(np.float64), y, config)
    naive = mine_pools_naive(x, y, config)
    np.testing.assert_array_equal(naive.positive_index, np.array(pos))
    np.testing.assert_array_equal(naive.negative_index, np.array(neg))


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("metric", ["euclidean", "squared_euclidean", "cosine"])
@pytest.mark.parametrize("config", [PoolConfig(hard_positives=3, hard_negatives=4), SKIPS],
                         ids=["plain", "skip"])
@pytest.mark.parametrize("block_size", [1, 7, 64, 5000])
def test_fast_equals_naive(mixed_clusters, backend: str, metric: str, config: PoolConfig,
                           block_size: int) -> None:
    """The issue's pool-equivalence test: classes of 1..160 items, blocks cutting classes."""
    x, y = mixed_clusters
    config = replace(config, distance=metric)
    fast = mine_pools(x, y, config, block_size=block_size, backend=backend)
    naive = mine_pools_naive(x, y, config)
    assert_same_pools(fast, naive)
    singleton = np.flatnonzero(np.bincount(y)[y] == 1)
    assert (fast.positive_index[singleton] == -1).all()
    assert np.isnan(fast.positive_distance[singleton]).all()


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("config", [PoolConfig(hard_positives=2, hard_negatives=2), PoolConfig(
    hard_positives=4, hard_negatives=3, positive_band=0.3, negative_band=0.02, skip_hardest=1,
    distance="cosine")])
def test_fast_equals_naive_with_column_chunks(monkeypatch, clusters, backend: str,
                                              config: PoolConfig) -> None:
    """Wider data: column chunks that cut classes, the group-extreme prefilter, wide skips."""
    monkeypatch.setattr(pool_search, "BLOCK_ELEMENTS", 96 * 700)  # 700-column chunks
    x, y = clusters([1, 2, 40, 300, 500, 900], dim=5, seed=2)
    fast = mine_pools(x, y, config, block_size=96, backend=backend)
    assert_same_pools(fast, mine_pools_naive(x, y, config))


@pytest.mark.parametrize("cols", [5, 40, 333, 1024, 1500])
@pytest.mark.parametrize("largest", [True, False])
def test_group_extreme_equals_topk(cols: int, largest: bool) -> None:
    g = torch.Generator().manual_seed(cols)
    scores = torch.randn(6, cols, generator=g).round(decimals=1)  # many exact ties
    scores[0, : cols // 2] = -math.inf if largest else math.inf  # masked share of a row
    for kk in (1, 3, 10, 200):
        values, cols_found = candidates.extreme_columns(scores, kk, largest)
        expected = scores.topk(min(kk, cols), dim=1, largest=largest).values
        np.testing.assert_array_equal(values.sort(dim=1).values, expected.sort(dim=1).values)
        np.testing.assert_array_equal(scores.gather(1, cols_found), values)
        assert all(len(set(row.tolist())) == len(row) for row in cols_found)


def test_points_on_a_line() -> None:
    """Class 0 at 0, 1, 3, 6; class 1 at 4.5, 10, 11: hand-computed pools."""
    x = np.array([[0.0], [1.0], [3.0], [6.0], [4.5], [10.0], [11.0]])
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    for mine in (mine_pools, mine_pools_naive):
        pools = mine(x, y, PoolConfig(hard_positives=3, hard_negatives=2))
        np.testing.assert_array_equal(pools.positive_index[0], [3, 2, 1])  # farthest first
        np.testing.assert_allclose(pools.positive_distance[0], [6.0, 3.0, 1.0])
        np.testing.assert_array_equal(pools.negative_index[0], [4, 5])  # nearest first
        np.testing.assert_array_equal(pools.negative_index[4], [2, 3])  # tie at 1.5: index 2 first
        np.testing.assert_array_equal(pools.positive_index[4], [6, 5, -1])  # 2 positives
        assert np.isnan(pools.positive_distance[4, 2])
        skipped = mine(x, y, PoolConfig(hard_positives=2, hard_negatives=1, skip_hardest=1))
        np.testing.assert_array_equal(skipped.positive_index[0], [2, 1])  # 2nd farthest on
        np.testing.assert_array_equal(skipped.negative_index[0], [5])
        np.testing.assert_array_equal(skipped.positive_index[4], [5, -1])  # 1 of 2 skipped
        clamped = mine(x, y, PoolConfig(hard_positives=2, skip_hardest=9))  # never skip all
        np.testing.assert_array_equal(clamped.positive_index[0], [1, -1])


def test_ties_go_to_the_smaller_index() -> None:
    x = np.array([[0.0, 0.0], [2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [5.0, 5.0], [-5.0, -5.0]])
    y = np.array([0, 0, 0, 0, 1, 1])
    for mine in (mine_pools, mine_pools_naive):
        pools = mine(x, y, PoolConfig(hard_positives=3, hard_negatives=2))
        np.testing.assert_array_equal(pools.positive_index[0], [1, 2, 3])
        np.testing.assert_array_equal(pools.negative_index[0], [4, 5])


def test_exact_duplicates_tie_break_like_the_oracle(clusters) -> None:
    x, y = clusters([5, 30, 40], dim=4, seed=3)
    x, y = np.concatenate([x, x, x]), np.concatenate([y, y, y])  # every item three times
    config = PoolConfig(hard_positives=4, hard_negatives=4)
    assert_same_pools(mine_pools(x, y, config, block_size=16), mine_pools_naive(x, y, config))


def test_edge_cases_single_class_and_k_zero(clusters) -> None:
    x, y = clusters([12], seed=5)
    pools = mine_pools(torch.from_numpy(x).requires_grad_(), torch.from_numpy(y),
                       PoolConfig(hard_positives=2, hard_negatives=3), progress=True)
    assert (pools.negative_index == -1).all() and pools.positive_index.min() >= 0
    assert pools.negative_index.shape == (12, 3) and pools.negative_index.dtype == np.int64
    empty = mine_pools(x, y, PoolConfig(hard_positives=0, hard_negatives=0))
    assert empty.positive_index.shape == (12, 0) and empty.problem() is None


def test_auto_backend_matches_torch(mixed_clusters) -> None:
    x, y = mixed_clusters
    wide = PoolConfig(hard_positives=2, hard_negatives=3, negative_band=0.3)  # few classes
    assert faiss_negatives.use_faiss("auto", 7, 90)  # and a wide band: faiss
    assert not faiss_negatives.use_faiss("auto", 200, 90)
    assert_same_pools(mine_pools(x, y, wide), mine_pools(x, y, wide, backend="torch"))


@pytest.mark.parametrize("embeddings, labels, message", [
    (np.array([[0.0, 1.0], [np.nan, 1.0]]), [0, 1], "row 1 is not finite"),
    (np.zeros(3), [0, 1, 2], "must be (N, D)"),
    (np.ones((3, 2)), [0, 1], "labels must have shape (3,)"),
])
def test_bad_inputs_raise_data_error(embeddings, labels, message: str) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        mine_pools(embeddings, labels)
    with pytest.raises(DataError):
        mine_pools_naive(embeddings, labels)


def test_bad_options_raise() -> None:
    with pytest.raises(DataError, match="row 1 is zero"):
        mine_pools(np.array([[1.0, 0.0], [0.0, 0.0]]), [0, 1], PoolConfig(distance="cosine"))
    for bad in ({"hard_positives": -1}, {"negative_band": 1.0}, {"distance": "manhattan"},
                {"hard_negatives": 1.5}, {"skip_hardest": True}):
        with pytest.raises(ConfigError):
            PoolConfig(**bad)
    with pytest.raises(ConfigError, match="backend"):
        mine_pools(np.ones((2, 2)), [0, 1], backend="annoy")
    with pytest.raises(ConfigError, match="block_size"):
        mine_pools(np.ones((2, 2)), [0, 1], block_size=0)

"""Distance matrices against torch.cdist and loops; finite gradients on duplicate rows; the
registry, and each distance's FAISS metric against its own pairwise function."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

from lookalike.distances import (
    DISTANCES,
    METRICS,
    Distance,
    get_distance,
    pairwise_distance,
    register_distance,
)
from lookalike.errors import ConfigError


def _rows(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def loop_distance(x: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    out = torch.empty(len(x), len(y), dtype=x.dtype)
    for i in range(len(x)):
        for j in range(len(y)):
            diff = x[i] - y[j]
            if metric == "euclidean":
                out[i, j] = diff.dot(diff).sqrt()
            elif metric == "squared_euclidean":
                out[i, j] = diff.dot(diff)
            else:
                out[i, j] = 1 - x[i].dot(y[j]) / (x[i].norm() * y[j].norm())
    return out


@pytest.mark.parametrize("metric", METRICS)
def test_matches_loop_and_cdist(metric):
    x, y = _rows(7, 5, 0), _rows(4, 5, 1)
    got = pairwise_distance(x, y, metric)
    assert got.shape == (7, 4)
    torch.testing.assert_close(got, loop_distance(x, y, metric))
    if metric != "cosine":
        power = 2 if metric == "squared_euclidean" else 1
        torch.testing.assert_close(got, torch.cdist(x, y) ** power)
    torch.testing.assert_close(pairwise_distance(x, metric=metric), pairwise_distance(x, x, metric))


@pytest.mark.parametrize("metric", METRICS)
def test_gradient_is_finite_with_duplicate_rows(metric):
    base = _rows(3, 4, 2)
    x = torch.cat([base, base, base[:1]]).requires_grad_(True)  # every row repeated
    dist = pairwise_distance(x, metric=metric)
    assert torch.all(dist.diagonal().abs() < 1e-7)
    dist.sum().backward()
    assert torch.isfinite(x.grad).all()
    # Same gradient as torch.cdist, which defines d|x - y| / dx = 0 at x == y.
    if metric == "euclidean":
        ref = x.detach().clone().requires_grad_(True)
        torch.cdist(ref, ref).sum().backward()
        torch.testing.assert_close(x.grad, ref.grad)


def test_euclidean_of_identical_float32_rows_is_zero_not_nan():
    x = torch.full((4, 8), 0.3, requires_grad=True)  # rounding makes |x|^2 + |y|^2 - 2xy != 0
    dist = pairwise_distance(x)
    dist.sum().backward()
    assert (dist >= 0).all() and dist.max() < 1e-3
    assert torch.isfinite(x.grad).all()


def test_cosine_is_in_zero_two():
    x = _rows(50, 3, 3)
    dist = pairwise_distance(torch.cat([x, -x, 10 * x]), metric="cosine")
    assert dist.min() >= -1e-12 and dist.max() <= 2 + 1e-12
    torch.testing.assert_close(dist[:50, 50:100].diagonal(), torch.full((50,), 2.0, dtype=x.dtype))
    torch.testing.assert_close(dist[:50, 100:].diagonal(), torch.zeros(50, dtype=x.dtype))


def test_unknown_metric_names_the_value():
    with pytest.raises(ConfigError, match="unknown distance 'manhattan'; choose one of "
                       "euclidean, squared_euclidean, cosine"):
        pairwise_distance(torch.zeros(2, 2), metric="manhattan")


def test_metrics_are_the_registered_names():
    assert METRICS == DISTANCES.names() == ("euclidean", "squared_euclidean", "cosine")
    assert all(get_distance(name).name == name for name in METRICS)


@pytest.mark.parametrize("name", METRICS)
def test_faiss_scores_become_the_distance(name):
    """Searching by the distance's FAISS metric, then ``from_faiss``, gives ``pairwise``:
    the contract the search index relies on (inputs normalised where ``unit_vectors``)."""
    distance = get_distance(name)
    rng = np.random.default_rng(0)
    x, y = (rng.normal(size=(n, 6)).astype(np.float32) * 3 for n in (5, 40))
    if distance.unit_vectors:
        x, y = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (x, y))
    index = faiss.IndexFlat(6, distance.faiss_metric_type())
    index.add(y)
    scores, found = index.search(x, 40)
    exact = distance.pairwise(torch.from_numpy(x).double(), torch.from_numpy(y).double())
    np.testing.assert_allclose(distance.from_faiss(scores),
                               np.take_along_axis(exact.numpy(), found, axis=1), atol=1e-4)
    np.testing.assert_array_equal(found[:, 0], exact.argmin(dim=1).numpy())  # nearest first


def test_a_registered_distance_is_usable_by_name():
    def chebyshev(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, y, p=float("inf"))

    toy = register_distance(Distance("chebyshev", chebyshev, faiss_metric="Linf",
                                     from_faiss=lambda s: s))
    try:
        x, y = _rows(4, 3, 5), _rows(6, 3, 6)
        torch.testing.assert_close(pairwise_distance(x, y, "chebyshev"),
                                   (x[:, None] - y[None]).abs().amax(dim=2))
        assert "chebyshev" in DISTANCES and toy.faiss_metric_type() == faiss.METRIC_Linf
        with pytest.raises(ConfigError, match="distance 'chebyshev' is already registered"):
            register_distance(toy)
    finally:
        DISTANCES.unregister("chebyshev")
    assert "chebyshev" not in DISTANCES


def test_an_unknown_faiss_metric_is_named():
    bad = Distance("bad", pairwise_distance, faiss_metric="NOPE")
    with pytest.raises(ConfigError, match="distance 'bad': FAISS has no metric 'NOPE'"):
        bad.faiss_metric_type()

"""Distance matrices against torch.cdist and loops; finite gradients on duplicate rows."""

from __future__ import annotations

import pytest
import torch

from lookalike.distances import METRICS, pairwise_distance
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
    with pytest.raises(ConfigError, match="manhattan"):
        pairwise_distance(torch.zeros(2, 2), metric="manhattan")

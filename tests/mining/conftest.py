"""Tiny seeded embeddings with classes of very different sizes, made by the tests themselves."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


def make_clusters(sizes: list[int], dim: int = 6, seed: int = 0,
                  spread: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters, one per class, items shuffled so classes interleave in index order.

    Returns:
        (N, dim) float32 embeddings and (N,) int64 labels (class c has sizes[c] items).
    """
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(labels)
    centres = rng.normal(size=(len(sizes), dim)) * spread
    x = centres[labels] + rng.normal(size=(len(labels), dim))
    return x.astype(np.float32), labels.astype(np.int64)


@pytest.fixture
def clusters() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """The ``make_clusters`` factory (test modules cannot import this conftest)."""
    return make_clusters


@pytest.fixture
def mixed_clusters() -> tuple[np.ndarray, np.ndarray]:
    """~280 items: classes of 1, 2, 3, 9, 30, 75 and 160 items (labels not 0..C-1)."""
    x, y = make_clusters([1, 2, 3, 9, 30, 75, 160], seed=1)
    return x, y * 7 + 3  # arbitrary label values must work as well as dense codes

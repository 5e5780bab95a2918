"""Seeded label arrays for the sampler tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def balanced_labels() -> np.ndarray:
    """6 classes x 8 items, shuffled so that dataset order tells nothing about class."""
    return np.random.default_rng(0).permutation(np.repeat(np.arange(6), 8))


@pytest.fixture
def uneven_labels() -> np.ndarray:
    """Class sizes 10, 10, 10, 3 (fewer than K=4) and 1 (a singleton), as strings."""
    sizes = {"coat": 10, "shirt": 10, "bag": 10, "sock": 3, "hat": 1}
    labels = np.concatenate([[name] * n for name, n in sizes.items()])
    return np.random.default_rng(1).permutation(labels)

"""Seeded embeddings and plain-loop k-NN oracles for the evaluation tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

from lookalike.distances import DISTANCES, Distance, register_distance


def manhattan(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, M) L1 distances: a toy distance that no built-in code path knows."""
    return torch.cdist(x, y, p=1)


MANHATTAN = Distance("manhattan", manhattan, faiss_metric="L1", from_faiss=lambda s: s,
                     summary="L1 distance sum |x - y|")


def clustered(seed: int, n: int = 240, dim: int = 16, classes: int = 6,
              noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 points around one random centre per class, and their labels.

    The last label is made unique so that one class has a single item (R = 0 in
    leave-one-out), the case pytorch-metric-learning leaves out of its averages.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    labels[-1] = classes  # a class of one item
    centres = rng.normal(size=(classes + 1, dim)) * 2.0
    points = centres[labels] + noise * rng.normal(size=(n, dim))
    return points.astype(np.float32), labels


def pair_distance(q: np.ndarray, g: np.ndarray, distance: str) -> float:
    """One float64 distance, written out by its definition."""
    if distance == "cosine":
        return 1.0 - float(q @ g) / float(np.linalg.norm(q) * np.linalg.norm(g))
    if distance == "manhattan":
        return float(np.abs(q - g).sum())
    squared = float(((q - g) ** 2).sum())
    return squared if distance == "squared_euclidean" else float(np.sqrt(squared))


def loop_knn(query: np.ndarray, gallery: np.ndarray, k: int, distance: str,
             exclude: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Brute force, one pair at a time in float64: sort by (distance, gallery index)."""
    query, gallery = query.astype(np.float64), gallery.astype(np.float64)
    distances, indices = [], []
    for i, q in enumerate(query):
        pairs = []
        for j, g in enumerate(gallery):
            if exclude is not None and exclude[i] == j:
                continue
            pairs.append((pair_distance(q, g, distance), j))
        pairs.sort()
        distances.append([d for d, _ in pairs[:k]])
        indices.append([j for _, j in pairs[:k]])
    return np.array(distances), np.array(indices)


def exact_pml_knn(query: torch.Tensor, k: int, reference: torch.Tensor,
                  ref_includes_query: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``knn_func`` for PML's AccuracyCalculator: exact float64 L2 ranking, ties by index."""
    diff = query.double()[:, None, :] - reference.double()[None, :, :]
    distances = diff.pow(2).sum(-1).sqrt()
    if ref_includes_query:
        distances[torch.arange(len(query)), torch.arange(len(query))] = float("inf")
    order = torch.sort(distances, dim=1, stable=True).indices[:, :k]
    return torch.gather(distances, 1, order), order


@pytest.fixture
def make_clustered() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return clustered


@pytest.fixture
def knn_oracle() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return loop_knn


@pytest.fixture
def pml_exact_knn() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    return exact_pml_knn


@pytest.fixture
def registered_manhattan() -> Iterator[Distance]:
    """The toy distance, registered for one test (and removed after it)."""
    register_distance(MANHATTAN)
    yield MANHATTAN
    DISTANCES.unregister(MANHATTAN.name)

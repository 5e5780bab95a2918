"""Retrieval evaluation: exact k-NN (faiss + float64 re-ranking) and metrics on its labels."""

from __future__ import annotations

from lookalike.evaluation.knn import KnnBlock, iter_knn, knn_search
from lookalike.evaluation.metrics import (
    map_at_k,
    map_at_r,
    precision_at_k,
    r_precision,
    recall_at_k,
    relevant_counts,
)
from lookalike.evaluation.report import RetrievalMetrics, evaluate_embeddings

__all__ = [
    "KnnBlock",
    "RetrievalMetrics",
    "evaluate_embeddings",
    "iter_knn",
    "knn_search",
    "map_at_k",
    "map_at_r",
    "precision_at_k",
    "r_precision",
    "recall_at_k",
    "relevant_counts",
]

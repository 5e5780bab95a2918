"""Evaluate a saved checkpoint on a dataset split: the library side of ``lookalike evaluate``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.data import ImageDataset, open_collection
from lookalike.errors import ConfigError
from lookalike.evaluation.report import RetrievalMetrics, evaluate_embeddings
from lookalike.models import embed
from lookalike.models.checkpoint import load_checkpoint


@dataclass
class CheckpointEvaluation:
    """The metrics, plus the embeddings and dataset they came from (for grids and plots)."""

    metrics: RetrievalMetrics
    embeddings: np.ndarray
    dataset: ImageDataset
    distance: str  # the one the model was trained with, which ranked the neighbours


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str = "fashion-mnist",
    split: str = "test",
    *,
    limit: int | None = None,
    device: str = "cpu",
    show_progress: bool = True,
) -> CheckpointEvaluation:
    """Leave-one-out retrieval metrics of ``checkpoint`` on ``data``'s ``split``, ranked by
    the distance the checkpoint's model was trained with; ``limit`` keeps the first items
    (at least 1)."""
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be an integer >= 1 (items to evaluate), got {limit}")
    model, info = load_checkpoint(checkpoint)
    collection = open_collection(data, split=split)
    if limit is not None and limit < len(collection):
        collection = collection.subset(np.arange(limit))
    config = info.config
    dataset = ImageDataset(collection, size=config.input_size, channels=config.in_channels)
    embeddings = embed(model, dataset, batch_size=512, device=device, progress=show_progress)
    metrics = evaluate_embeddings(embeddings, collection.labels, distance=config.distance)
    return CheckpointEvaluation(metrics=metrics, embeddings=embeddings, dataset=dataset,
                                distance=config.distance)

"""What every loss does first: check the batch and compute its distance matrix once."""

from __future__ import annotations

from torch import Tensor

from lookalike.distances import pairwise_distance
from lookalike.errors import DataError


def batch_distances(loss_name: str, embeddings: Tensor, labels: Tensor,
                    metric: str) -> tuple[Tensor, Tensor]:
    """(labels on the embeddings' device, (B, B) distance matrix), after checking that
    ``embeddings`` is (B, D) and ``labels`` (B,) with B > 0."""
    if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1] or not len(labels):
        raise DataError(
            f"{loss_name} needs embeddings (B, D) and labels (B,) with B > 0, "
            f"got {tuple(embeddings.shape)} and {tuple(labels.shape)}"
        )
    return labels.to(embeddings.device), pairwise_distance(embeddings, metric=metric)

"""The embedding head: backbone features -> the compact vectors that distances compare."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lookalike.errors import ConfigError


class EmbeddingHead(nn.Module):
    """Project features to ``embedding_dim`` and L2-normalise them.

    On the unit sphere squared Euclidean distance is ``2 - 2 cos``, so a triplet margin has
    the same meaning for every model and batch (FaceNet, Schroff et al. 2015, sec. 3).
    Batch norm after the projection (optional) keeps the pre-normalisation scale stable
    early in training.

    Args:
        in_dim: the backbone's ``feature_dim``.
        embedding_dim: size D of the output vectors.
        normalize: L2-normalise the output (recommended; off for raw-distance experiments).
        batchnorm: add a BatchNorm1d after the linear projection.
    """

    def __init__(self, in_dim: int, embedding_dim: int = 64, normalize: bool = True,
                 batchnorm: bool = False) -> None:
        super().__init__()
        if in_dim < 1 or embedding_dim < 1:
            raise ConfigError(f"EmbeddingHead needs positive sizes, got in_dim={in_dim}, "
                              f"embedding_dim={embedding_dim}")
        self.proj = nn.Linear(in_dim, embedding_dim, bias=not batchnorm)
        self.bn = nn.BatchNorm1d(embedding_dim) if batchnorm else nn.Identity()
        self.normalize = normalize
        self.embedding_dim = embedding_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) features -> (B, embedding_dim) embeddings, unit-norm if ``normalize``."""
        x = self.bn(self.proj(features))
        return F.normalize(x, p=2.0, dim=1) if self.normalize else x

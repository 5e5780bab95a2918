"""Embedders (backbone + head) and their checkpoints."""

from __future__ import annotations

from lookalike.models.backbones import EfficientNetLite0, SmallCNN
from lookalike.models.checkpoint import (
    CheckpointInfo,
    load_checkpoint,
    model_fingerprint,
    save_checkpoint,
)
from lookalike.models.config import EmbedderConfig
from lookalike.models.embedder import Embedder, build_embedder, embed
from lookalike.models.factory import (
    ModuleBackbone,
    create_backbone,
    list_backbones,
    pretrained_normalization,
)
from lookalike.models.head import EmbeddingHead
from lookalike.models.state import load_training_state, save_training_state

__all__ = [
    "CheckpointInfo",
    "EfficientNetLite0",
    "Embedder",
    "EmbedderConfig",
    "EmbeddingHead",
    "ModuleBackbone",
    "SmallCNN",
    "build_embedder",
    "create_backbone",
    "embed",
    "list_backbones",
    "load_checkpoint",
    "load_training_state",
    "model_fingerprint",
    "pretrained_normalization",
    "save_checkpoint",
    "save_training_state",
]

"""Mining models: what embeds the whole training set before pools are mined.

Three kinds (docs/design.md 2.1, step 1): an ImageNet-pretrained backbone used as a fixed
feature extractor (its pooled features, L2-normalised; no head, since an untrained head would
only scramble them), a lookalike checkpoint, or the model being trained (passed in directly).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lookalike.data import ImageDataset, check_trainable, open_collection
from lookalike.errors import ConfigError
from lookalike.mining.analysis import analyze_pools
from lookalike.mining.pool_search import mine_pools
from lookalike.mining.pools import PoolConfig, Pools
from lookalike.models import EmbedderConfig, build_embedder
from lookalike.models.checkpoint import load_checkpoint
from lookalike.models.embedder import BatchDataset, Embedder
from lookalike.models.factory import pretrained_backbones
from lookalike.models.sharded_embed import embed_everywhere


class BackboneFeatures(nn.Module):
    """An embedder's backbone features, L2-normalised: (B, C, H, W) -> (B, feature_dim)."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__()
        self.embedder = embedder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.embedder.backbone(self.embedder.preprocess(images))
        return F.normalize(features, dim=1)


def load_mining_model(spec: str, *, in_channels: int, input_size: int = 64) -> nn.Module:
    """A pretrained backbone such as ``efficientnet-lite0`` (its features at ``input_size``
    px) or a checkpoint path."""
    if spec in pretrained_backbones():
        config = EmbedderConfig(backbone=spec, embedding_dim=1, input_size=input_size,
                                in_channels=in_channels)
        return BackboneFeatures(build_embedder(config, pretrained=True))
    if Path(spec).exists():
        model, _ = load_checkpoint(spec)
        return model
    raise ConfigError(f"mining model {spec!r} is neither a pretrained backbone "
                      f"({', '.join(pretrained_backbones())}) nor an existing checkpoint folder")


@dataclass
class MinedPools:
    """Pools plus what it cost to get them (the benchmark reports both parts)."""

    pools: Pools
    embeddings: np.ndarray
    embed_seconds: float
    mine_seconds: float


def mine_with_model(model: nn.Module, dataset: BatchDataset, labels: np.ndarray,
                    config: PoolConfig, *, device: str | torch.device = "cpu",
                    progress: bool = True) -> MinedPools:
    """Embed every item of ``dataset`` with ``model`` and mine its pools."""
    started = time.perf_counter()
    # every process of a multi-process run embeds its share; all then mine the same pools
    embeddings = embed_everywhere(model, dataset, batch_size=512, device=device,
                                  progress=progress)
    embedded = time.perf_counter()
    pools = mine_pools(embeddings, labels, config, progress=progress)
    return MinedPools(pools, embeddings, embedded - started, time.perf_counter() - embedded)


def mining_dataset(data: str, split: str | None, *, limit: int | None = None,
                   input_size: int | None = None, channels: int | None = None) -> ImageDataset:
    """The images to mine: a dataset split, optionally its first ``limit`` items.

    Refuses, like training, data without a positive for some class or without negatives.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be an integer >= 1 (items to mine), got {limit}")
    collection = open_collection(data, split=split)
    if limit is not None and limit < len(collection):
        collection = collection.subset(np.arange(limit))
    check_trainable(collection)
    return ImageDataset(collection, size=input_size, channels=channels)


def mine_collection(data: str, mining_model: str, config: PoolConfig, *,
                    split: str | None = "train", limit: int | None = None,
                    input_size: int = 64, device: str = "cpu",
                    progress: bool = True) -> MinedPools:
    """``lookalike mine``: embed a dataset with a mining model and mine its pools.

    Images are read at the size the mining model takes: ``input_size`` for a pretrained
    backbone, the checkpoint's own input size and channels for a lookalike checkpoint. The
    labels and the analysis ride along in the pools file, so ``analyze`` needs no images.
    """
    if mining_model in pretrained_backbones():
        dataset = mining_dataset(data, split, limit=limit, input_size=input_size)
        model = load_mining_model(mining_model, in_channels=dataset.channels,
                                  input_size=input_size)
    else:
        model = load_mining_model(mining_model, in_channels=3)
        assert isinstance(model, Embedder)
        embedder = model.config
        dataset = mining_dataset(data, split, limit=limit, input_size=embedder.input_size,
                                 channels=embedder.in_channels)
    labels = dataset.collection.labels
    mined = mine_with_model(model, dataset, labels, config, device=device, progress=progress)
    analysis = analyze_pools(mined.embeddings, labels, mined.pools)
    mined.pools.extra["labels"] = labels
    mined.pools.extra["analysis"] = np.array(analysis.to_json())
    return mined

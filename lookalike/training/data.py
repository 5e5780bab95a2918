"""Turn a TrainConfig's ``data`` option into training and validation datasets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lookalike.data import ImageDataset, check_trainable, open_collection, split_by_item
from lookalike.training.config import TrainConfig


@dataclass
class TrainingData:
    """The train split (what the sampler draws from) and the held-out validation split."""

    train: ImageDataset
    val: ImageDataset
    class_names: list[str]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def channel_statistics(dataset: ImageDataset, limit: int = 5000) -> tuple[tuple, tuple]:
    """Per-channel mean and std of (up to ``limit``) training images, for the model's input
    normalisation: measured on the data instead of pasted constants."""
    count = min(len(dataset), limit)
    images, _, _ = dataset.batch(list(range(count)))
    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def limit_items(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """A seeded random subset of ``limit`` item indices (all, in order, when no limit)."""
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    generator = torch.Generator().manual_seed(seed)
    return np.sort(torch.randperm(len(labels), generator=generator)[:limit].numpy())


def prepare_training_data(config: TrainConfig) -> TrainingData:
    """Open the data, hold out a stratified validation split, and wrap both as datasets."""
    collection = open_collection(config.data, split="train", skip_bad=config.skip_bad)
    check_trainable(collection)
    if config.val_split is None:
        train_idx, val_idx = split_by_item(collection.labels, config.val_fraction,
                                           seed=config.seed)
        held_out = collection
    else:  # a separate split, e.g. the published test set (benchmarks report on it per epoch)
        train_idx = np.arange(len(collection))
        held_out = open_collection(config.data, split=config.val_split, skip_bad=config.skip_bad)
        val_idx = np.arange(len(held_out))
    train_idx = train_idx[limit_items(collection.labels[train_idx], config.train_limit,
                                      config.seed)]
    val_idx = val_idx[limit_items(held_out.labels[val_idx], config.val_limit, config.seed)]
    train = ImageDataset(collection.subset(train_idx), size=config.input_size)
    val = ImageDataset(held_out.subset(val_idx), size=config.input_size, channels=train.channels)
    check_trainable(train.collection)
    mean, std = channel_statistics(train)
    return TrainingData(train, val, list(collection.class_names), train.channels, mean, std)

"""Turn a TrainConfig's ``data`` option into training and validation datasets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lookalike.data import (
    ImageCollection,
    ImageDataset,
    check_trainable,
    open_collection,
    open_seen_unseen,
    split_by_item,
)
from lookalike.errors import ConfigError
from lookalike.training.config import TrainConfig


@dataclass
class TrainingData:
    """The train split (what the sampler draws from) and the held-out validation split."""

    train: ImageDataset
    val: ImageDataset
    class_names: list[str]
    channels: int


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


def held_out_split(config: TrainConfig) -> tuple[ImageCollection, np.ndarray,
                                                  ImageCollection, np.ndarray]:
    """(collection, train_idx, held_out, val_idx): what to train on and validate on.

    ``--split items`` holds out a stratified share of the training items, or validates on
    ``--val-split``; ``--split classes`` trains on the "seen" classes and validates on the
    "unseen" ones (``open_seen_unseen``), the protocol that benchmarks report.
    """
    if config.data.split == "classes":
        if config.data.val_split is not None:
            raise ConfigError(f"--split classes validates on the unseen classes; drop "
                              f"--val-split {config.data.val_split}")
        seen, unseen = open_seen_unseen(config.data.source, skip_bad=config.data.skip_bad)
        check_trainable(seen)
        return seen, np.arange(len(seen)), unseen, np.arange(len(unseen))
    collection = open_collection(config.data.source, split="train", skip_bad=config.data.skip_bad)
    check_trainable(collection)
    if config.data.val_split is None:
        train_idx, val_idx = split_by_item(collection.labels, config.data.val_fraction,
                                           seed=config.machine.seed)
        return collection, train_idx, collection, val_idx
    # a separate split, e.g. the published test set (benchmarks report on it per epoch)
    held_out = open_collection(config.data.source, split=config.data.val_split,
                               skip_bad=config.data.skip_bad)
    return collection, np.arange(len(collection)), held_out, np.arange(len(held_out))


def count_training_items(config: TrainConfig) -> int:
    """How many items ``config`` trains on (its split and ``--train-limit``), without
    decoding any image: what the training recipe fits its epochs to."""
    collection, train_idx, _, _ = held_out_split(config)
    return len(limit_items(collection.labels[train_idx], config.data.train_limit,
                           config.machine.seed))


def prepare_training_data(config: TrainConfig) -> TrainingData:
    """Open the data, hold out a validation split (items or whole classes, as
    ``config.data.split`` says), and wrap both as datasets."""
    collection, train_idx, held_out, val_idx = held_out_split(config)
    train_idx = train_idx[limit_items(collection.labels[train_idx], config.data.train_limit,
                                      config.machine.seed)]
    val_idx = val_idx[limit_items(held_out.labels[val_idx], config.data.val_limit,
                                  config.machine.seed)]
    size = config.model.input_size
    train = ImageDataset(collection.subset(train_idx), size=size)
    val = ImageDataset(held_out.subset(val_idx), size=size, channels=train.channels)
    check_trainable(train.collection)
    return TrainingData(train, val, list(collection.class_names), train.channels)

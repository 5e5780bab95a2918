"""P x K batches: P classes with K items each, so every anchor has positives and negatives.

Batch-hard and batch-all mining only see the triplets inside a batch; a batch drawn at
random from many classes holds almost no positives. The P x K scheme ("In Defense of the
Triplet Loss", Hermans et al. 2017) fixes that. Classes and items are walked in shuffled
passes (``ClassQueues``) so that, within an epoch, every item of a class is used before
any repeats, and every class is drawn before any class repeats.

Randomness comes from one ``torch.Generator`` seeded with ``seed + epoch``: call
``set_epoch`` before each epoch (as with ``DistributedSampler``); iterating the same epoch
twice gives the same batches, so a resumed epoch is exact.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from lookalike.errors import ConfigError, DataError
from lookalike.sampling.batch_shape import batches_to_cover


class ShuffledQueue:
    """Hands out distinct values pass after pass, each pass a fresh shuffle of all of them."""

    def __init__(self, values: np.ndarray, generator: torch.Generator) -> None:
        self.values = np.asarray(values)
        self.generator = generator
        self.pending = self.values[:0]  # what is left of the current pass, in order

    def take(self, n: int) -> np.ndarray:
        """n distinct values (n <= len(values)); a pass that runs out refills mid-draw."""
        if n > len(self.values):
            raise ConfigError(f"cannot take {n} distinct values from {len(self.values)}")
        head, self.pending = self.pending[:n], self.pending[n:]
        if len(head) < n:  # start a new pass, skipping values this draw already has
            order = torch.randperm(len(self.values), generator=self.generator).numpy()
            fresh = self.values[order]
            picked = np.flatnonzero(~np.isin(fresh, head))[: n - len(head)]
            head = np.concatenate([head, fresh[picked]])
            self.pending = np.delete(fresh, picked)
        return head


class ClassQueues:
    """One shuffled queue over the classes and one per class over its items.

    Args:
        items_by_class: per class, the (n_c,) dataset indices of its items.
        generator: the only source of randomness.
    """

    def __init__(self, items_by_class: Sequence[np.ndarray], generator: torch.Generator) -> None:
        self.generator = generator
        self.class_queue = ShuffledQueue(np.arange(len(items_by_class)), generator)
        self.item_queues = [ShuffledQueue(items, generator) for items in items_by_class]

    def classes(self, p: int) -> np.ndarray:
        """(p,) distinct class positions (into items_by_class)."""
        return self.class_queue.take(p)

    def items(self, position: int, k: int) -> np.ndarray:
        """(min(k, n_c),) distinct dataset indices of one class: all of them if it has < k."""
        queue = self.item_queues[position]
        return queue.take(min(k, len(queue.values)))


class PKSampler:
    """Batch sampler of P distinct classes x K distinct items each (lists of dataset indices).

    Use as ``DataLoader(dataset, batch_sampler=sampler)``. A class with fewer than K items
    gives all of them (never duplicates: a duplicate would be a zero-distance positive).
    Classes with a single item cannot give a positive and are never drawn (a warning names
    them). Subclasses can reuse ``queues`` and ``draw_batch`` and add items to each batch.

    Args:
        labels: (N,) class label of every dataset item (ints or strings).
        classes_per_batch: P >= 2.  items_per_class: K >= 1 (K >= 2 for positives).
        seed: base seed; epoch e draws from ``seed + e``.
        batches_per_epoch: default enough to draw every class and, in expectation, every
            drawable item (``batch_shape.batches_to_cover``; N // (P * K) when every class
            has K or more).
    """

    def __init__(
        self,
        labels: Sequence[object] | np.ndarray | torch.Tensor,
        classes_per_batch: int,
        items_per_class: int,
        seed: int = 0,
        batches_per_epoch: int | None = None,
    ) -> None:
        labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if labels.ndim != 1 or len(labels) == 0:
            raise DataError(f"labels must be a non-empty 1-D sequence, got shape {labels.shape}")
        if classes_per_batch < 2 or items_per_class < 1:
            raise ConfigError(f"need classes_per_batch >= 2 and items_per_class >= 1, got "
                              f"P={classes_per_batch}, K={items_per_class}")
        classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        by_class = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
        if (counts == 1).any():
            lone = classes[counts == 1]
            listed = ", ".join(map(str, lone[:10])) + (", ..." if len(lone) > 10 else "")
            warnings.warn(f"{len(lone)} classes have a single item and are never drawn in "
                          f"a batch (no positive for them): {listed}", stacklevel=2)
        self.labels = labels
        self.classes = classes[counts > 1]  # (C,) the drawable labels
        self.items_by_class = [items for items in by_class if len(items) > 1]
        if len(self.classes) < 2:
            raise DataError(f"PKSampler needs 2+ classes with 2+ items each; the {len(labels)} "
                            f"labels have {len(self.classes)}")
        if classes_per_batch > len(self.classes):
            raise ConfigError(f"classes_per_batch={classes_per_batch} but only "
                              f"{len(self.classes)} classes have 2+ items; use a smaller P")
        if batches_per_epoch is not None and batches_per_epoch < 1:
            raise ConfigError(f"batches_per_epoch must be >= 1, got {batches_per_epoch}")
        self.batches_per_epoch = batches_per_epoch or batches_to_cover(
            counts[counts > 1], classes_per_batch, items_per_class)
        self.classes_per_batch, self.items_per_class = classes_per_batch, items_per_class
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the next iteration from ``seed + epoch``."""
        self.epoch = epoch

    def queues(self) -> ClassQueues:
        """Fresh queues for this epoch, seeded with ``seed + epoch``."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return ClassQueues(self.items_by_class, generator)

    def draw_batch(self, queues: ClassQueues) -> list[int]:
        """One batch: P classes from the class queue, up to K items from each, grouped."""
        positions = queues.classes(self.classes_per_batch)
        batch = np.concatenate([queues.items(p, self.items_per_class) for p in positions])
        return [int(i) for i in batch]

    def __iter__(self) -> Iterator[list[int]]:
        queues = self.queues()
        for _ in range(self.batches_per_epoch):
            yield self.draw_batch(queues)

    def __len__(self) -> int:
        return self.batches_per_epoch

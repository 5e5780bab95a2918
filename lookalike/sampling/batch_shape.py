"""The P x K make-up of a batch and the length of an epoch, fitted to the training labels.

A fixed P = 8, K = 16 suits Fashion-MNIST (10 classes of 6,000) but not a collection of
hundreds of classes with a handful of images each: K = 16 exceeds every class, a batch then
holds 8 classes with all their few items, and ``N // (P * K)`` batches train on a fraction of
the images. So by default K follows the typical class, P fills the batch budget, and an
epoch has enough batches to draw every class and, in expectation, as many items as there
are. Explicit values always win. On Fashion-MNIST the defaults give P = 8, K = 16 and
``N // 128`` batches, exactly the fixed values they replace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BATCH_ITEMS = 128  # the default budget P x K
MIN_ITEMS, MAX_ITEMS = 2, 16  # the range an automatic K is clipped to


def drawable_class_sizes(labels: np.ndarray) -> np.ndarray:
    """(C,) sizes of the classes with 2+ items (the ones a P x K sampler can draw)."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    sizes: np.ndarray = counts[counts > 1]
    return sizes


def batches_to_cover(sizes: np.ndarray, classes_per_batch: int, items_per_class: int) -> int:
    """Batches per epoch that draw every class at least once and, in expectation, as many
    items as the classes hold: ``max(ceil(C / P), floor(N / (P x mean_c min(K, n_c))))``.

    A class smaller than K gives all its items per draw, so the expected batch holds
    ``P x mean_c min(K, n_c)`` items, which is P x K when every class has K or more (then
    this is the plain ``N // (P * K)``).

    Args:
        sizes: (C,) drawable class sizes.  classes_per_batch, items_per_class: P and K.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if len(sizes) == 0:
        return 1
    classes, items = len(sizes), int(sizes.sum())
    per_draw = int(np.minimum(sizes, items_per_class).sum())  # C x the mean items per class
    every_class = -(-classes // classes_per_batch)
    every_item = items * classes // (classes_per_batch * per_draw)
    return max(1, every_class, every_item)


@dataclass(frozen=True)
class BatchShape:
    """What a run's batches look like and why.

    ``classes_per_batch`` (P) and ``items_per_class`` (K) as the samplers use them,
    ``batches_per_epoch``, and what they were fitted to: the drawable ``classes``, their
    ``items`` and ``median_class_size``; the ``auto`` flags say which of P, K and the
    batch count came from the data rather than from the user.
    """

    classes_per_batch: int
    items_per_class: int
    batches_per_epoch: int
    classes: int
    items: int
    median_class_size: int
    auto: tuple[bool, bool, bool] = (False, False, False)  # P, K, batches per epoch

    @property
    def batch_size(self) -> int:
        """P x K, the nominal batch (smaller where classes have fewer than K items)."""
        return self.classes_per_batch * self.items_per_class

    @property
    def small_classes(self) -> bool:
        """A P x K draw takes half of a typical class or more (median size <= 2 K)."""
        return self.median_class_size <= 2 * self.items_per_class

    def describe(self) -> str:
        """One line for the run log, e.g. ``batches: P=32 classes x K=4 items (median class
        size 4), 33 batches cover 4,200 training items in 1,050 classes``."""
        p_auto, k_auto, b_auto = self.auto
        why = f"median class size {self.median_class_size:,}" if k_auto else "-K"
        if k_auto and self.items_per_class != self.median_class_size:
            why += f", clipped to [{MIN_ITEMS}, {MAX_ITEMS}]"
        p = "" if p_auto else " (-P)"
        n = self.batches_per_epoch
        batches = f"{n:,} batch{'es' if n != 1 else ''}"
        batches += " cover" if b_auto else " (--batches-per-epoch) draw from"
        return (f"batches: P={self.classes_per_batch} classes{p} x K={self.items_per_class} "
                f"items ({why}), {batches} "
                f"{self.items:,} training items in {self.classes:,} classes")


def resolve_batch_shape(labels: np.ndarray, classes_per_batch: int | None = None,
                        items_per_class: int | None = None,
                        batches_per_epoch: int | None = None,
                        batch_items: int = BATCH_ITEMS) -> BatchShape:
    """P, K and the epoch length for ``labels``; None means "fit it to the data".

    K = the median drawable class size (the lower median, a real size) clipped to [2, 16];
    P = ``batch_items // K`` clipped to [2, C]; batches per epoch from
    :func:`batches_to_cover`.

    Args:
        labels: (N,) training labels.
        batch_items: the budget P x K an automatic P fills.
    """
    sizes = np.sort(drawable_class_sizes(labels))
    median = int(sizes[(len(sizes) - 1) // 2]) if len(sizes) else 0
    k = items_per_class or int(np.clip(median, MIN_ITEMS, MAX_ITEMS))
    p = classes_per_batch or int(np.clip(batch_items // k, 2, max(2, len(sizes))))
    batches = batches_per_epoch or batches_to_cover(sizes, p, k)
    auto = (classes_per_batch is None, items_per_class is None, batches_per_epoch is None)
    return BatchShape(p, k, batches, classes=len(sizes), items=int(sizes.sum()),
                      median_class_size=median, auto=auto)

"""Seeded, deterministic train / held-out splits, by item (stratified) or by class.

``split_by_item`` holds out a share of every class (validation on seen classes);
``split_by_class`` holds out whole classes, the unseen-class protocol of metric-learning
benchmarks (CUB-200: train on classes 1-100, test on 101-200). ``split_seen_unseen`` is that
protocol for any collection ("seen" / "unseen" in ``open_collection``). All return sorted (K,)
int64 index arrays into the labels they were given; the same seed always gives the same split.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from lookalike.data.records import Indices
from lookalike.errors import ConfigError, DataError


def _check_fraction(fraction: float) -> None:
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"held-out fraction must be in [0, 1), got {fraction}")


def split_by_item(labels: Indices, fraction: float,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``fraction`` of each class's items, chosen at random with ``seed``.

    Every class with >= 2 items keeps >= 1 item on each side (so it has a positive in
    training and a query in validation); a single-item class stays in training.

    Args:
        labels: (N,) integer class labels.
        fraction: share of each class to hold out, in [0, 1); 0 holds out nothing.
        seed: seeds the permutation.

    Returns:
        train_idx, held_idx: sorted (K,) int64 arrays that partition range(N).
    """
    _check_fraction(fraction)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if fraction == 0.0 or len(labels) == 0:
        return np.arange(len(labels)), np.arange(0)
    order = np.random.default_rng(seed).permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]  # grouped by class, shuffled within
    _, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    held_per_class = np.rint(counts * fraction).astype(np.int64)
    held_per_class = np.where(counts >= 2, np.clip(held_per_class, 1, counts - 1), 0)
    rank = np.arange(len(order)) - np.repeat(starts, counts)  # position within its class
    held = rank < np.repeat(held_per_class, counts)
    return np.sort(order[~held]), np.sort(order[held])


def split_by_class(labels: Indices, fraction: float = 0.5, seed: int = 0,
                   first_half: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Hold out whole classes: no class appears on both sides (unseen-class evaluation).

    Args:
        labels: (N,) integer class labels.
        fraction: share of the classes present to hold out (at least one, at most all but one).
        seed: seeds which classes are held out (unused with ``first_half``).
        first_half: train on the first classes in sorted label order and hold out the last
            ones, as the CUB / Cars benchmarks do (with fraction 0.5: the second half).

    Returns:
        train_idx, held_idx: sorted (K,) int64 arrays that partition range(N).
    """
    _check_fraction(fraction)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise DataError(f"a class split needs at least 2 classes, found {len(classes)}")
    num_held = int(np.clip(np.rint(len(classes) * fraction), 1, len(classes) - 1))
    if first_half:
        held_classes = classes[len(classes) - num_held:]
    else:
        held_classes = np.random.default_rng(seed).permutation(classes)[:num_held]
    held = np.isin(labels, held_classes)
    return np.flatnonzero(~held), np.flatnonzero(held)


SEEN, UNSEEN = "seen", "unseen"
UNSEEN_CLASS_SPLITS = (SEEN, UNSEEN)
"""Split names of the unseen-class protocol, understood by ``open_collection`` for any data."""
ALL = "all"
"""The split name of a whole collection, understood by every source."""
UNSPLIT_NAMES = ("train", "test")
"""What data without splits of its own (a plain class folder, a manifest without a split
column) also answers to, with all of it: training reads "train" and evaluation "test"."""


def no_such_split(data: object, split: str, own: Iterable[str]) -> DataError:
    """The one-line error for a ``split`` that ``data`` lacks, naming the splits it has:
    its ``own`` (none for unsplit data), then those every source has."""
    own = list(own)
    if own:
        listed = ", ".join([*own, ALL, *UNSEEN_CLASS_SPLITS])
    else:
        listed = (f"{ALL} (also called {' and '.join(UNSPLIT_NAMES)}: it has no splits of "
                  f"its own), {', '.join(UNSEEN_CLASS_SPLITS)}")
    return DataError(f"{data} has no split {split!r}; its splits are: {listed}")


def whole_split(data: object, split: str | None, own: Sequence[str] = ()) -> str | None:
    """``split`` with "all" as None (the whole collection). Unsplit data (no ``own``)
    also takes "train" and "test" as the whole; anything else not in ``own`` is refused."""
    if split is None or split == ALL:
        return None
    if split in own:
        return split
    if not own and split in UNSPLIT_NAMES:
        return None
    raise no_such_split(data, split, own)


def split_by_class_halves(labels: Indices) -> tuple[np.ndarray, np.ndarray]:
    """The first ceil(C/2) classes present, in label order, against the rest.

    Deterministic (no seed): label order is the collection's natural class order, so a
    class-per-folder tree of 7 classes trains on its first 4 folders and holds out the last 3.

    Returns:
        first_idx, second_idx: sorted (K,) int64 arrays that partition range(N).
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    classes = np.unique(labels)  # sorted
    if len(classes) < 2:
        raise DataError(f"a class split needs at least 2 classes, found {len(classes)}")
    second = labels >= classes[(len(classes) + 1) // 2]
    return np.flatnonzero(~second), np.flatnonzero(second)


def split_seen_unseen(labels: Indices,
                      splits: Sequence[str] | np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Seen (training) and unseen (evaluation) items: no class is on both sides.

    A collection whose own "train" and "test" parts share no class (the benchmark layouts,
    a train/ test/ folder tree or a manifest split by class) keeps them: seen = its train
    part, unseen = its test part. Any other collection is cut by ``split_by_class_halves``.

    Args:
        labels: (N,) integer class labels.
        splits: (N,) the items' split names, or None.

    Returns:
        seen_idx, unseen_idx: sorted (K,) int64 index arrays.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if splits is not None:
        splits = np.asarray(splits, dtype=str)
        train, test = splits == "train", splits == "test"
        if train.any() and test.any() and not np.intersect1d(labels[train], labels[test]).size:
            return np.flatnonzero(train), np.flatnonzero(test)
    return split_by_class_halves(labels)

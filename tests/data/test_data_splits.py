"""split_by_item / split_by_class: determinism, partition, stratification, disjoint classes."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.data.splits import (
    split_by_class,
    split_by_class_halves,
    split_by_item,
    split_seen_unseen,
)
from lookalike.errors import ConfigError, DataError


def labels_with_counts(counts):
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    return np.random.default_rng(0).permutation(labels)


def assert_partition(train, held, n):
    assert train.dtype == np.int64 and held.dtype == np.int64
    assert np.all(np.diff(train) > 0) and np.all(np.diff(held) > 0)  # sorted, no repeats
    assert len(np.intersect1d(train, held)) == 0
    np.testing.assert_array_equal(np.union1d(train, held), np.arange(n))


def test_split_by_item_is_stratified():
    counts = [100, 40, 10, 3, 2, 1]
    labels = labels_with_counts(counts)
    train, held = split_by_item(labels, 0.25, seed=3)
    assert_partition(train, held, len(labels))
    for c, n in enumerate(counts):  # oracle: a plain loop per class
        held_c = sum(1 for i in held if labels[i] == c)
        train_c = sum(1 for i in train if labels[i] == c)
        assert held_c + train_c == n
        if n >= 2:
            assert held_c >= 1 and train_c >= 1
            assert held_c == min(max(round(n * 0.25), 1), n - 1)
        else:
            assert (train_c, held_c) == (1, 0)


def test_split_by_item_is_deterministic_and_seeded():
    labels = labels_with_counts([30, 30, 30])
    first, second = split_by_item(labels, 0.2, seed=1), split_by_item(labels, 0.2, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[1], split_by_item(labels, 0.2, seed=2)[1])


def test_split_by_item_edges():
    labels = labels_with_counts([5, 5])
    train, held = split_by_item(labels, 0.0, seed=0)
    assert len(held) == 0 and len(train) == 10
    with pytest.raises(ConfigError, match="fraction must be in"):
        split_by_item(labels, 1.0, seed=0)
    with pytest.raises(ConfigError):
        split_by_item(labels, -0.1, seed=0)
    train, held = split_by_item(np.array([], dtype=np.int64), 0.5)
    assert len(train) == len(held) == 0


def test_split_by_class_is_disjoint_and_seeded():
    labels = labels_with_counts([4] * 10)
    train, held = split_by_class(labels, 0.3, seed=4)
    assert_partition(train, held, len(labels))
    train_classes, held_classes = set(labels[train]), set(labels[held])
    assert not train_classes & held_classes and len(held_classes) == 3
    again = split_by_class(labels, 0.3, seed=4)
    assert np.array_equal(again[1], held)
    others = {frozenset(labels[split_by_class(labels, 0.3, seed=s)[1]]) for s in range(10)}
    assert len(others) > 1


def test_split_by_class_first_half_like_cub():
    labels = labels_with_counts([3] * 10)
    train, held = split_by_class(labels, first_half=True)  # CUB-200: 100 train, 100 test
    assert sorted(set(labels[train])) == [0, 1, 2, 3, 4]
    assert sorted(set(labels[held])) == [5, 6, 7, 8, 9]
    assert np.array_equal(held, split_by_class(labels, first_half=True, seed=99)[1])
    with pytest.raises(DataError, match="at least 2 classes"):
        split_by_class(np.zeros(5, dtype=np.int64), 0.5)
    tiny = split_by_class(labels_with_counts([2, 2]), 0.01)
    assert len(set(labels_with_counts([2, 2])[tiny[1]])) == 1  # at least one class held


@pytest.mark.parametrize("present", [[0, 1], [0, 1, 2, 3, 4], [2, 5, 7, 8, 11, 12, 30]])
def test_split_by_class_halves_takes_the_first_ceil_half(present):
    labels = np.random.default_rng(1).permutation(np.repeat(present, 3))
    seen, unseen = split_by_class_halves(labels)
    assert_partition(seen, unseen, len(labels))
    first = present[: (len(present) + 1) // 2]  # oracle: a plain loop over the items
    assert list(seen) == [i for i, label in enumerate(labels) if label in first]
    assert split_by_class_halves(labels)[0].tolist() == seen.tolist()  # no randomness


def test_split_seen_unseen_keeps_a_split_by_class_and_halves_otherwise():
    labels = np.array([0, 1, 2, 3, 0, 1])
    disjoint = np.array(["train", "train", "test", "test", "train", "val"])
    seen, unseen = split_seen_unseen(labels, disjoint)
    assert seen.tolist() == [0, 1, 4] and unseen.tolist() == [2, 3]  # "val" on neither side
    shared = np.array(["train", "train", "test", "test", "test", "test"])  # 0, 1 in both
    for splits in (shared, None, np.array(["train"] * 6)):
        seen, unseen = split_seen_unseen(labels, splits)
        assert seen.tolist() == [0, 1, 4, 5] and unseen.tolist() == [2, 3]
    with pytest.raises(DataError, match="at least 2 classes, found 1"):
        split_seen_unseen([4, 4, 4], None)

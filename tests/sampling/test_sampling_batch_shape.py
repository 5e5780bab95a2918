"""P, K and the epoch length fitted to the labels; explicit values win; epochs cover the data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from lookalike.sampling import PKSampler
from lookalike.sampling.batch_shape import batches_to_cover, resolve_batch_shape
from lookalike.sampling.injecting import anchors_per_class


def test_many_small_classes_get_k_the_class_size_and_p_filling_the_batch() -> None:
    shape = resolve_batch_shape(np.repeat(np.arange(60), 4))
    assert (shape.classes_per_batch, shape.items_per_class) == (32, 4)
    assert shape.batches_per_epoch == 2  # 32 classes a batch: 2 batches draw all 60
    assert shape.auto == (True, True, True) and shape.small_classes
    assert shape.describe() == ("batches: P=32 classes x K=4 items (median class size 4), "
                                "2 batches cover 240 training items in 60 classes")


@pytest.mark.parametrize("per_class", [6000, 5400, 360])
def test_fashion_mnist_shape_is_the_old_fixed_one(per_class: int) -> None:
    labels = np.repeat(np.arange(10), per_class)
    shape = resolve_batch_shape(labels)
    assert (shape.classes_per_batch, shape.items_per_class) == (8, 16)
    assert shape.batches_per_epoch == len(labels) // 128  # what N // (P * K) gave before
    assert not shape.small_classes


def test_explicit_values_win() -> None:
    labels = np.repeat(np.arange(60), 4)
    shape = resolve_batch_shape(labels, classes_per_batch=5, items_per_class=3,
                                batches_per_epoch=7)
    assert (shape.classes_per_batch, shape.items_per_class, shape.batches_per_epoch) == (5, 3, 7)
    assert shape.auto == (False, False, False)
    only_k = resolve_batch_shape(labels, items_per_class=2)
    assert (only_k.classes_per_batch, only_k.items_per_class) == (60, 2)  # 128 // 2, clipped


def test_k_is_clipped_and_p_stays_within_the_classes() -> None:
    mixed = np.concatenate([np.repeat(np.arange(5), 2), np.repeat(np.arange(5, 9), 50), [99]])
    shape = resolve_batch_shape(mixed)  # sizes 2 x5, 50 x4 (the singleton is not drawable)
    assert shape.median_class_size == 2 and shape.items_per_class == 2
    assert shape.classes_per_batch == 9 and shape.classes == 9 and shape.items == 210
    big = resolve_batch_shape(np.repeat(np.arange(3), 100))
    assert big.items_per_class == 16 and big.classes_per_batch == 3


def test_an_old_default_k_on_small_classes_still_covers_the_data() -> None:
    sizes = np.full(1050, 4)
    # K = 16 takes the 4 items of each class: 8 x 4 items a batch, so 132 batches, not 32
    assert batches_to_cover(sizes, 8, 16) == 132
    assert batches_to_cover(np.full(10, 6000), 8, 16) == 60000 // 128


@pytest.mark.parametrize("sizes", [[4] * 60, [2, 3, 5, 8, 13, 4, 4, 6, 2, 9, 4, 7], [3] * 7])
def test_an_epoch_draws_every_item_of_classes_up_to_k(sizes: list[int]) -> None:
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(len(sizes)), sizes))
    shape = resolve_batch_shape(labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = PKSampler(labels, shape.classes_per_batch, shape.items_per_class, seed=3)
    assert len(sampler) == shape.batches_per_epoch
    small = np.flatnonzero(np.isin(labels, np.flatnonzero(
        np.asarray(sizes) <= shape.items_per_class)))
    expected_batch = shape.classes_per_batch * np.minimum(sizes, shape.items_per_class).mean()
    for epoch in range(3):
        sampler.set_epoch(epoch)
        drawn = [i for batch in sampler for i in batch]
        assert set(small.tolist()) <= set(drawn), "every class is drawn"
        assert len(labels) - expected_batch < len(drawn), "as many draws as items, within a batch"


def test_hybrid_keeps_two_anchors_per_small_class() -> None:
    assert anchors_per_class(4, inject_negatives=True, small_classes=True) == 2
    assert anchors_per_class(4, inject_negatives=True, small_classes=False) == 1  # as before
    assert anchors_per_class(16, inject_negatives=True, small_classes=False) == 5
    assert anchors_per_class(16, inject_negatives=False, small_classes=True) == 8

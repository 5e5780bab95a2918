"""PKSampler and its queues: batch shape, determinism, coverage, edge cases."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lookalike.errors import ConfigError, DataError
from lookalike.sampling import PKSampler, ShuffledQueue


def batches_of(sampler: PKSampler, epoch: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_every_batch_is_p_classes_by_k_distinct_items(balanced_labels):
    sampler = PKSampler(balanced_labels, classes_per_batch=3, items_per_class=4, seed=0,
                        batches_per_epoch=10)
    batches = batches_of(sampler)
    assert len(batches) == len(sampler) == 10
    for batch in batches:
        assert len(batch) == len(set(batch)) == 12
        counts = Counter(balanced_labels[batch].tolist())
        assert len(counts) == 3 and set(counts.values()) == {4}
        assert all(isinstance(i, int) for i in batch)


def test_epoch_covers_every_item_once(balanced_labels):
    sampler = PKSampler(balanced_labels, 3, 4, seed=5)
    assert len(sampler) == 48 // 12
    used = [i for batch in batches_of(sampler) for i in batch]
    assert sorted(used) == list(range(48))


def test_deterministic_per_seed_and_epoch(balanced_labels):
    sampler = PKSampler(balanced_labels, 3, 4, seed=1)
    first = batches_of(sampler, epoch=2)
    assert batches_of(sampler, epoch=2) == first  # a resumed epoch replays exactly
    assert batches_of(sampler, epoch=3) != first
    assert batches_of(PKSampler(balanced_labels, 3, 4, seed=2), epoch=2) != first
    assert batches_of(PKSampler(balanced_labels, 3, 4, seed=1), epoch=2) == first


def test_no_global_rng_is_used_or_changed(balanced_labels):
    torch.manual_seed(0)
    np.random.seed(0)
    state, np_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    a = batches_of(PKSampler(balanced_labels, 3, 4, seed=1))
    torch.manual_seed(123)
    np.random.seed(123)
    b = batches_of(PKSampler(balanced_labels, 3, 4, seed=1))
    assert a == b
    torch.manual_seed(0)
    np.random.seed(0)
    batches_of(PKSampler(balanced_labels, 3, 4, seed=1))
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)


def test_small_class_gives_all_its_items_and_singleton_is_excluded(uneven_labels):
    with pytest.warns(UserWarning, match=r"1 classes have a single item.*hat"):
        sampler = PKSampler(uneven_labels, classes_per_batch=4, items_per_class=4, seed=0,
                            batches_per_epoch=20)
    assert sorted(sampler.classes.tolist()) == ["bag", "coat", "shirt", "sock"]
    sock = set(np.flatnonzero(uneven_labels == "sock").tolist())
    for batch in batches_of(sampler):
        labels = uneven_labels[batch]
        assert "hat" not in labels and len(batch) == len(set(batch)) == 4 * 3 + 3
        assert set(batch) & sock == sock  # all 3 sock items, each once


def test_too_few_drawable_classes_is_a_data_error():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match="2\\+ classes with 2\\+ items"):
            PKSampler([0, 0, 0, 1, 2], 2, 2)


def test_p_above_the_drawable_classes_suggests_a_smaller_p(uneven_labels):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConfigError, match="only 4 classes have 2\\+ items; use a smaller P"):
            PKSampler(uneven_labels, 5, 2)
    with pytest.raises(ConfigError):
        PKSampler([0, 0, 1, 1], 1, 2)
    with pytest.raises(ConfigError):
        PKSampler([0, 0, 1, 1], 2, 2, batches_per_epoch=0)


def test_queue_passes_use_every_value_and_never_repeat_within_a_draw():
    queue = ShuffledQueue(np.arange(7), torch.Generator().manual_seed(0))
    draws = [queue.take(3) for _ in range(14)]  # 42 values = 6 full passes
    assert all(len(set(d.tolist())) == 3 for d in draws)
    assert Counter(np.concatenate(draws).tolist()) == dict.fromkeys(range(7), 6)


def test_works_as_a_dataloader_batch_sampler(balanced_labels):
    data = TensorDataset(torch.arange(48), torch.from_numpy(balanced_labels))
    loader = DataLoader(data, batch_sampler=PKSampler(balanced_labels, 2, 3, seed=0))
    for index, label in loader:
        assert torch.equal(label, torch.from_numpy(balanced_labels)[index])
        assert len(label.unique()) == 2

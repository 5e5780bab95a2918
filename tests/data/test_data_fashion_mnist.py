"""load_fashion_mnist on a tiny self-made IDX folder, its error messages, and the real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ROOT,
    has_idx_files,
    load_fashion_mnist,
)
from lookalike.errors import DataError


def test_train_and_test_splits(idx_folder):
    train = load_fashion_mnist("train", root=idx_folder)  # gzipped files
    test = load_fashion_mnist("test", root=idx_folder)  # raw files
    assert (len(train), len(test)) == (24, 12)
    assert train.pixels.shape == (24, 8, 8) and train.pixels.dtype == np.uint8
    np.testing.assert_array_equal(train.labels, np.arange(24) % 4)
    assert train.class_names == list(FASHION_MNIST_CLASSES)
    assert train.pixels[5, 1, 1] == 5 and train.pixels[5, 0, 0] == 200
    assert test.source(3) == f"{idx_folder}/test#3"
    assert set(test.splits) == {"test"}


def test_all_concatenates_and_keeps_item_numbers(idx_folder):
    both = load_fashion_mnist("all", root=idx_folder)
    assert len(both) == 36
    assert list(both.splits[[0, 23, 24, 35]]) == ["train", "train", "test", "test"]
    assert both.source(24) == f"{idx_folder}/test#0"
    assert both.pixels[24, 1, 1] == 0 and both.pixels[23, 1, 1] == 23


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(DataError) as info:
        load_fashion_mnist("train", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "train-images-idx3-ubyte" in message
    assert "install the Debian package dataset-fashion-mnist (apt-get install " \
           "dataset-fashion-mnist) or pass --data PATH to a folder with the IDX files" in message
    assert "\n" not in message
    assert not has_idx_files(tmp_path)


def test_unknown_split(idx_folder):
    with pytest.raises(DataError, match="unknown Fashion-MNIST split 'val'"):
        load_fashion_mnist("val", root=idx_folder)


def test_classes_txt_names_other_idx_data(idx_folder):
    (idx_folder / "classes.txt").write_text("zero\none\ntwo\nthree\n")
    assert load_fashion_mnist("test", root=idx_folder).class_names == ["zero", "one", "two",
                                                                       "three"]
    (idx_folder / "classes.txt").write_text("zero\none\n")
    with pytest.raises(DataError, match="labels go up to 3 but there are only 2 class names"):
        load_fashion_mnist("test", root=idx_folder)


@pytest.mark.skipif(not Path(FASHION_MNIST_ROOT).is_dir(), reason="dataset-fashion-mnist absent")
def test_real_fashion_mnist():
    train = load_fashion_mnist("train")
    test = load_fashion_mnist("test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.pixels.shape == (60000, 28, 28) and test.pixels.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(train.labels), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(test.labels), np.full(10, 1000))
    assert len(train.class_names) == 10 and train.class_names[9] == "Ankle boot"
    assert train.source(123) == "fashion-mnist/train#123"
    assert train.load(0).size == (28, 28) and train.load(0).mode == "L"

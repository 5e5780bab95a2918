"""scan_image_folder: recursion, extensions, natural order, split layouts and every error."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from lookalike.data.folder import natural_key, scan_image_folder
from lookalike.errors import DataError


def relative(collection, root):
    return [os.path.relpath(collection.source(i), root) for i in range(len(collection))]


def test_recursive_natural_order_and_extensions(make_folder):
    root = make_folder({
        "dog": ["img10.png", "img2.PNG", "sub/img1.jpeg", "b.JPG", "a.bmp", "c.tif", "d.webp"],
        "cat": ["x.gif", "deep/er/y.tiff", "z.jpg"],
        "cat10": ["1.png"],
        "cat2": ["1.png"],
    })
    collection = scan_image_folder(root)
    assert collection.class_names == ["cat", "cat2", "cat10", "dog"]
    assert relative(collection, root) == [
        "cat/deep/er/y.tiff", "cat/x.gif", "cat/z.jpg", "cat2/1.png", "cat10/1.png",
        "dog/a.bmp", "dog/b.JPG", "dog/c.tif", "dog/d.webp", "dog/img2.PNG", "dog/img10.png",
        "dog/sub/img1.jpeg",
    ]
    np.testing.assert_array_equal(collection.labels, [0, 0, 0, 1, 2, 3, 3, 3, 3, 3, 3, 3])
    assert collection.splits is None
    assert collection.load(0).mode == "RGB"


def test_order_is_deterministic(make_folder):
    root = make_folder({"a": [f"{i}.png" for i in (3, 1, 20, 2)], "b": ["1.png"]})
    first, second = scan_image_folder(root), scan_image_folder(root)
    assert relative(first, root) == relative(second, root) == [
        "a/1.png", "a/2.png", "a/3.png", "a/20.png", "b/1.png"]


def test_natural_key():
    names = ["a10", "a2", "A1", "b", "a2x", "10", "9"]
    assert sorted(names, key=natural_key) == ["9", "10", "A1", "a2", "a2x", "a10", "b"]


def test_non_images_and_hidden_files_are_skipped_with_a_warning(make_folder):
    root = make_folder({"a": ["1.png", "notes.txt", ".hidden.png"], "b": ["1.png"]})
    (root / ".git").mkdir()
    with pytest.warns(UserWarning, match="ignored 1 files that are not images"):
        collection = scan_image_folder(root)
    assert relative(collection, root) == ["a/1.png", "b/1.png"]
    assert collection.class_names == ["a", "b"]


def test_clean_folder_gives_no_warning(make_folder):
    root = make_folder({"a": ["1.png"], "b": ["1.png"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scan_image_folder(root)


def test_missing_and_empty_root(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path / 'nope'}: no such folder"):
        scan_image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: the folder is empty"):
        scan_image_folder(tmp_path / "empty")


def test_root_without_class_folders(tmp_path, image_file):
    image_file(tmp_path / "flat" / "1.png")
    with pytest.raises(DataError, match="flat: no class folders"):
        scan_image_folder(tmp_path / "flat")


def test_class_folder_without_images(make_folder):
    root = make_folder({"a": ["1.png"], "empty_class": ["readme.txt"]})
    with pytest.raises(DataError, match=r"empty_class: class folder has no images \(bmp, gif"):
        scan_image_folder(root)


def test_split_layout_shares_class_indices(make_folder, tmp_path):
    root = tmp_path / "splits"
    make_folder({"cat": ["1.png", "2.png"], "dog": ["1.png"]}, root=root / "train")
    make_folder({"dog": ["1.png"], "eel": ["1.png"]}, root=root / "test")
    train = scan_image_folder(root, split="train")
    test = scan_image_folder(root, split="test")
    assert train.class_names == test.class_names == ["cat", "dog", "eel"]
    np.testing.assert_array_equal(train.labels, [0, 0, 1])
    np.testing.assert_array_equal(test.labels, [1, 2])
    assert list(test.splits) == ["test", "test"]
    both = scan_image_folder(root)
    assert len(both) == 5 and sorted(set(both.splits)) == ["test", "train"]
    assert len(scan_image_folder(root, split="all")) == 5
    with pytest.raises(DataError, match=r"splits has no split 'val'; its splits are: test, "
                                        r"train, all, seen, unseen$"):
        scan_image_folder(root, split="val")


def test_a_plain_class_tree_is_read_whole_for_train_test_and_all(make_folder):
    root = make_folder({"a": ["1.png"], "b": ["1.png"]})
    for split in (None, "all", "train", "test"):
        assert len(scan_image_folder(root, split=split)) == 2


@pytest.mark.parametrize("split", ["bogus", "val", "Test"])
def test_a_plain_class_tree_refuses_other_splits(make_folder, split):
    root = make_folder({"a": ["1.png"], "b": ["1.png"]})
    with pytest.raises(DataError) as caught:
        scan_image_folder(root, split=split)
    assert str(caught.value) == (
        f"{root} has no split {split!r}; its splits are: all (also called train and test: "
        "it has no splits of its own), seen, unseen")

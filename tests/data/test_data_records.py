"""ArrayCollection / FileCollection contracts, subset, validate (skip_bad) and check_trainable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lookalike.data.records import ArrayCollection, FileCollection, check_trainable
from lookalike.errors import BadImageError, DataError


def small_array(n=6, rgb=False):
    shape = (n, 4, 5, 3) if rgb else (n, 4, 5)
    pixels = np.arange(np.prod(shape)).reshape(shape).astype(np.uint8)
    return ArrayCollection(pixels, np.arange(n) % 3, ["a", "b", "c"], name="toy")


def test_array_collection_load_and_source():
    gray, rgb = small_array(), small_array(rgb=True)
    assert len(gray) == 6 and gray.labels.dtype == np.int64
    assert gray.load(2).mode == "L" and rgb.load(2).mode == "RGB"
    np.testing.assert_array_equal(np.asarray(gray.load(2)), gray.pixels[2])
    assert gray.load(2).size == (5, 4)
    assert gray.source(4) == "toy#4"


@pytest.mark.parametrize("kind", ["list", "numpy", "tensor"])
def test_subset_keeps_class_names_and_item_numbers(kind):
    collection = small_array()
    rows = {"list": [4, 1], "numpy": np.array([4, 1]), "tensor": torch.tensor([4, 1])}[kind]
    part = collection.subset(rows)
    assert part.class_names == ["a", "b", "c"]
    np.testing.assert_array_equal(part.labels, [1, 1])
    np.testing.assert_array_equal(part.pixels, collection.pixels[[4, 1]])
    assert [part.source(0), part.source(1)] == ["toy#4", "toy#1"]
    assert part.subset([1]).source(0) == "toy#1"


def test_bad_construction():
    with pytest.raises(DataError, match="label 3 has no class name"):
        ArrayCollection(np.zeros((2, 3, 3), np.uint8), [0, 3], ["a", "b", "c"])
    with pytest.raises(DataError, match="pixels must be uint8"):
        ArrayCollection(np.zeros((2, 3, 3), np.float32), [0, 1], ["a", "b"])
    with pytest.raises(DataError, match="3 labels for 2 images"):
        ArrayCollection(np.zeros((2, 3, 3), np.uint8), [0, 1, 1], ["a", "b"])
    with pytest.raises(IndexError, match="index 6 is out of range"):
        small_array().subset([0, 6])


def test_read_only_pixels_are_copied():
    pixels = np.zeros((2, 3, 3), np.uint8)
    pixels.flags.writeable = False
    assert ArrayCollection(pixels, [0, 1], ["a", "b"]).pixels.flags.writeable


def test_file_collection_and_validate(tmp_path, image_file):
    good = [image_file(tmp_path / f"{i}.png", seed=i) for i in range(3)]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"garbage")
    paths = [good[0], broken, good[1], good[2]]
    collection = FileCollection(paths, [0, 0, 1, 1], ["x", "y"], splits=["a", "b", "a", "b"])
    assert collection.source(1) == str(broken)
    assert collection.subset([3, 0]).paths == [str(good[2]), str(good[0])]
    assert list(collection.subset([3, 0]).splits) == ["b", "a"]
    with pytest.raises(BadImageError, match=r"broken\.png: not an image file"):
        collection.validate(skip_bad=False, progress=False)
    cleaned, bad = collection.validate(skip_bad=True, progress=False)
    assert len(cleaned) == 3 and cleaned.paths == [str(p) for p in good]
    np.testing.assert_array_equal(cleaned.labels, [0, 1, 1])
    assert [path for path, _ in bad] == [str(broken)] and "not an image file" in bad[0][1]
    assert cleaned.skipped == bad


def test_check_trainable():
    check_trainable(small_array())
    one_image = ArrayCollection(np.zeros((3, 2, 2), np.uint8), [0, 0, 1], ["shoe", "bag"])
    with pytest.raises(DataError, match=r"^class 'bag' has 1 image; triplet training needs at "
                                        r"least 2 per class \(it has no positive\)$"):
        check_trainable(one_image)
    one_class = ArrayCollection(np.zeros((3, 2, 2), np.uint8), [1, 1, 1], ["shoe", "bag"])
    with pytest.raises(DataError, match=r"^only one class 'bag': triplet training needs at "
                                        r"least 2 classes \(no negatives\)$"):
        check_trainable(one_class)
    with pytest.raises(DataError, match=r"class 'a' has 2 images; .* at least 3 per class$"):
        check_trainable(small_array(), min_per_class=3)
    with pytest.raises(DataError, match="empty"):
        check_trainable(small_array().subset([]))
    # a class with no items at all (e.g. held out by a class split) is not an error
    check_trainable(small_array().subset([0, 1, 3, 4]))

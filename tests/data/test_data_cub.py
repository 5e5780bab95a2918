"""load_cub200: labels, names, the standard class split, and errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.data.cub import find_cub_root, load_cub200
from lookalike.errors import DataError

from ..benchmark_layouts import CUB_NAMES, write_cub


@pytest.fixture
def cub(tmp_path: Path) -> Path:
    return write_cub(tmp_path / "data")


def test_labels_names_and_class_split(cub: Path) -> None:
    birds = load_cub200(cub)
    assert birds.class_names == list(CUB_NAMES)
    np.testing.assert_array_equal(birds.labels, np.repeat(np.arange(6), 3))
    # classes 1-3 (the first half) train, 4-6 test: not train_test_split.txt, which
    # splits every class's images
    np.testing.assert_array_equal(birds.splits, ["train"] * 9 + ["test"] * 9)
    assert Path(birds.source(0)).relative_to(cub / "images").parts[0] == CUB_NAMES[0]
    assert birds.load(0).size == (16, 16)


def test_split_selects_a_class_half(cub: Path) -> None:
    train, test = load_cub200(cub, "train"), load_cub200(cub, "test")
    assert set(train.labels) == {0, 1, 2} and set(test.labels) == {3, 4, 5}
    assert train.class_names == test.class_names == list(CUB_NAMES)
    assert len(load_cub200(cub, "all")) == len(train) + len(test)
    with pytest.raises(DataError, match=r"\(CUB-200-2011\) has no split 'val'; its splits are: "
                                        "train, test, all, seen, unseen$"):
        load_cub200(cub, "val")


def test_folder_or_its_parent(cub: Path) -> None:
    assert find_cub_root(cub) == cub and find_cub_root(cub.parent) == cub
    assert find_cub_root(cub / "images") is None
    assert len(load_cub200(cub.parent)) == 18


def test_odd_class_count_trains_on_the_larger_half(tmp_path: Path) -> None:
    birds = load_cub200(write_cub(tmp_path, classes=5, per_class=2))
    assert sorted(set(birds.labels[birds.splits == "train"])) == [0, 1, 2]


def test_missing_listing_is_named(cub: Path) -> None:
    (cub / "classes.txt").unlink()
    with pytest.raises(DataError, match="CUB_200_2011: not a complete CUB-200-2011 folder "
                                        r"\(missing classes.txt\)"):
        load_cub200(cub)


@pytest.mark.parametrize(("listing", "line", "text", "message"), [
    ("images.txt", 3, "3 a/b.jpg extra", r"images.txt:3: expected 2 fields \(image_id path\), "
                                         "got 3"),
    ("image_class_labels.txt", 2, "two 1", "image_class_labels.txt:2: image_id must be an "
                                           "integer, got 'two'"),
    ("image_class_labels.txt", 4, "4 99", "image_class_labels.txt:4: class id 99 is not in "
                                          "classes.txt"),
    ("classes.txt", 2, "1 again", "classes.txt:2: class id 1 is listed twice"),
])
def test_malformed_line_is_named(cub: Path, listing: str, line: int, text: str,
                                 message: str) -> None:
    lines = (cub / listing).read_text().splitlines()
    lines[line - 1] = text
    (cub / listing).write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        load_cub200(cub)


def test_image_without_a_class(cub: Path) -> None:
    lines = (cub / "image_class_labels.txt").read_text().splitlines()
    (cub / "image_class_labels.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match="image_class_labels.txt: no class for image id 18 "
                                        r"\(images.txt line 18\)"):
        load_cub200(cub)


def test_missing_image_is_named_with_its_line(cub: Path) -> None:
    for path in sorted((cub / "images").rglob("*.jpg"))[4:6]:
        path.unlink()
    with pytest.raises(DataError, match=r"images.txt:5: no such image file .*\.jpg "
                                        r"\(1 more of 18 are missing\)"):
        load_cub200(cub)
    assert len(load_cub200(cub, check_files=False)) == 18  # --skip-bad drops them later

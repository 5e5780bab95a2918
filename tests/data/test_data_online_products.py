"""load_online_products: the Ebay_train / Ebay_test listings, class names, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.data.online_products import find_sop_root, load_online_products
from lookalike.errors import DataError

from ..benchmark_layouts import write_sop


@pytest.fixture
def sop(tmp_path: Path) -> Path:
    return write_sop(tmp_path / "data")


def test_labels_names_and_the_files_own_split(sop: Path) -> None:
    products = load_online_products(sop)
    np.testing.assert_array_equal(products.labels, np.repeat(np.arange(6), 3))
    assert products.class_names == ["bicycle_final/1", "cabinet_final/2", "chair_final/3",
                                    "bicycle_final/4", "cabinet_final/5", "chair_final/6"]
    np.testing.assert_array_equal(products.splits, ["train"] * 9 + ["test"] * 9)
    assert Path(products.source(0)) == sop / "bicycle_final" / "111085122870_0.JPG"
    test = load_online_products(sop, "test")
    assert set(test.labels) == {3, 4, 5} and test.class_names == products.class_names


def test_labels_follow_class_ids_across_both_files(sop: Path) -> None:
    # Put class 2 in the test file: labels still follow the class ids, and splits the files
    train = (sop / "Ebay_train.txt").read_text().splitlines()
    moved = [line for line in train[1:] if line.split()[1] == "2"]
    (sop / "Ebay_train.txt").write_text("\n".join(x for x in train if x not in moved) + "\n")
    with open(sop / "Ebay_test.txt", "a") as handle:
        handle.write("\n".join(moved) + "\n")
    products = load_online_products(sop)
    assert sorted(set(products.labels[products.splits == "test"])) == [1, 3, 4, 5]
    assert products.class_names[1] == "cabinet_final/2"


def test_folder_or_its_parent(sop: Path) -> None:
    assert find_sop_root(sop) == sop and find_sop_root(sop.parent) == sop
    assert find_sop_root(sop / "bicycle_final") is None
    assert len(load_online_products(sop.parent, "train")) == 9


def test_missing_listing_is_named(sop: Path) -> None:
    (sop / "Ebay_test.txt").unlink()
    with pytest.raises(DataError, match=r"not a complete Stanford Online Products folder "
                                        r"\(missing Ebay_test.txt\)"):
        load_online_products(sop)


@pytest.mark.parametrize(("line", "text", "message"), [
    (1, "image_id class_id path", "Ebay_train.txt:1: expected the header image_id class_id "
                                  "super_class_id path, got image_id class_id path"),
    (3, "2 1 1", r"Ebay_train.txt:3: expected 4 fields \(image_id class_id super_class_id "
                 r"path\), got 3"),
    (2, "1 one 1 bicycle_final/x.JPG", "Ebay_train.txt:2: class_id must be an integer"),
])
def test_malformed_line_is_named(sop: Path, line: int, text: str, message: str) -> None:
    lines = (sop / "Ebay_train.txt").read_text().splitlines()
    lines[line - 1] = text
    (sop / "Ebay_train.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        load_online_products(sop)


def test_missing_image_is_named_with_its_line(sop: Path) -> None:
    (sop / "chair_final" / "111085122875_1.JPG").unlink()
    with pytest.raises(DataError, match=r"Ebay_test\.txt:9: no such image file .*_1\.JPG$"):
        load_online_products(sop)
    assert len(load_online_products(sop, check_files=False)) == 18

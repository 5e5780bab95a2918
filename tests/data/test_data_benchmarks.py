"""open_collection recognises the benchmark layouts, and every source has "seen" / "unseen"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.data import FileCollection, find_benchmark, open_collection, open_seen_unseen
from lookalike.errors import DataError

from ..benchmark_layouts import CUB_NAMES, write_cars, write_cub, write_sop

WRITERS = {"cub200": write_cub, "cars196": write_cars, "online-products": write_sop}


@pytest.mark.parametrize("name", list(WRITERS))
def test_layouts_are_recognised_before_the_folder_scan(tmp_path: Path, name: str) -> None:
    WRITERS[name](tmp_path / "data")
    assert find_benchmark(tmp_path / "data") == name
    whole = open_collection(str(tmp_path / "data"))
    assert isinstance(whole, FileCollection) and len(whole) == 18
    assert len(whole.class_names) == 6 and set(whole.splits) == {"train", "test"}
    for split, classes in (("train", {0, 1, 2}), ("test", {3, 4, 5})):
        assert set(open_collection(tmp_path / "data", split=split).labels) == classes
    # the layouts' own split is by class, so it is the unseen-class split too
    seen, unseen = open_seen_unseen(tmp_path / "data")
    assert set(seen.labels) == {0, 1, 2} and set(unseen.labels) == {3, 4, 5}
    assert seen.class_names == unseen.class_names == whole.class_names


def test_cub_folder_opens_by_its_own_path(tmp_path: Path) -> None:
    cub = write_cub(tmp_path)
    assert open_collection(cub, split="unseen").class_names == list(CUB_NAMES)


def test_a_class_folder_named_like_a_listing_is_still_a_folder(make_folder) -> None:
    root = make_folder({"a": ["1.png", "2.png"], "b": ["1.png", "2.png"]})
    (root / "images.txt").write_text("notes\n")  # no images/ folder: not CUB
    assert find_benchmark(root) is None
    with pytest.warns(UserWarning, match="ignored 1 files"):
        assert open_collection(root).class_names == ["a", "b"]


def test_broken_layout_fails_with_the_file_named(tmp_path: Path) -> None:
    sop = write_sop(tmp_path)
    (sop / "Ebay_train.txt").write_text("image_id class_id super_class_id path\n1 2\n")
    with pytest.raises(DataError, match=r"Ebay_train\.txt:2: expected 4 fields"):
        open_collection(tmp_path, split="seen")


def test_skip_bad_drops_listed_images_that_are_missing(tmp_path: Path) -> None:
    cub = write_cub(tmp_path)
    next((cub / "images").rglob("*.jpg")).unlink()
    with pytest.raises(DataError, match="no such image file"):
        open_collection(cub)
    with pytest.warns(UserWarning, match="skipped 1 bad images of 18"):
        assert len(open_collection(cub, skip_bad=True, progress=False)) == 17


def test_plain_folder_seen_is_the_first_half_of_its_classes(make_folder) -> None:
    root = make_folder({f"c{k}": ["1.png", "2.png"] for k in (1, 2, 3, 10, 20)})
    seen = open_collection(root, split="seen")
    unseen = open_collection(str(root), split="unseen")
    names = ["c1", "c2", "c3", "c10", "c20"]  # natural order
    assert seen.class_names == unseen.class_names == names
    assert [seen.class_names[c] for c in np.unique(seen.labels)] == ["c1", "c2", "c3"]
    assert [unseen.class_names[c] for c in np.unique(unseen.labels)] == ["c10", "c20"]
    assert len(seen) == 6 and len(unseen) == 4


def test_split_folder_tree_uses_its_own_parts_when_classes_are_disjoint(make_folder) -> None:
    root = make_folder({"a": ["1.png"], "b": ["1.png"]}, root=None)
    make_folder({"c": ["1.png"], "d": ["1.png"], "e": ["1.png"]}, root=root.parent / "test")
    (root.parent / "images").rename(root.parent / "train")
    tree = root.parent
    seen, unseen = open_seen_unseen(tree)
    assert [seen.class_names[c] for c in seen.labels] == ["a", "b"]
    assert [unseen.class_names[c] for c in unseen.labels] == ["c", "d", "e"]


def test_split_folder_tree_with_shared_classes_is_cut_in_halves(make_folder, tmp_path) -> None:
    make_folder({"a": ["1.png"], "b": ["1.png"], "c": ["1.png"]}, root=tmp_path / "t" / "train")
    make_folder({"a": ["2.png"], "b": ["2.png"], "c": ["2.png"]}, root=tmp_path / "t" / "test")
    seen, unseen = open_seen_unseen(tmp_path / "t")
    assert sorted(seen.labels) == [0, 0, 1, 1] and sorted(unseen.labels) == [2, 2]
    assert set(seen.splits) == {"train", "test"}  # every item of a seen class, both parts


def test_manifest_and_idx_files_are_cut_in_halves(make_folder, idx_folder) -> None:
    root = make_folder({"a": ["1.png"], "b": ["1.png"], "c": ["1.png"]})
    csv = root / "list.csv"
    csv.write_text("path,label\na/1.png,z\nb/1.png,y\nc/1.png,x\n")
    seen = open_collection(csv, split="seen")  # classes x, y of x y z, rows in file order
    assert [seen.class_names[c] for c in seen.labels] == ["y", "x"]
    # IDX: labels i % 4 over train (24) + test (12): classes 0, 1 are seen
    seen = open_collection(idx_folder, split="seen")
    assert set(seen.labels) == {0, 1} and len(seen) == 18 and set(seen.splits) == {"train", "test"}
    assert set(open_collection(idx_folder, split="unseen").labels) == {2, 3}


def test_one_class_cannot_be_split(make_folder) -> None:
    root = make_folder({"only": ["1.png", "2.png"]})
    with pytest.raises(DataError, match="images: a class split needs at least 2 classes, found 1"):
        open_collection(root, split="unseen")

"""open_collection: every kind of --data spec, skip_bad, and unknown specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.data.fashion_mnist import FASHION_MNIST_ROOT
from lookalike.data.records import ArrayCollection, FileCollection
from lookalike.data.sources import open_collection
from lookalike.errors import BadImageError, DataError


def test_idx_folder(idx_folder):
    train = open_collection(str(idx_folder), split="train")
    assert isinstance(train, ArrayCollection) and len(train) == 24
    assert len(open_collection(idx_folder, split="test")) == 12
    assert len(open_collection(idx_folder)) == 36
    assert len(open_collection(idx_folder, split="all")) == 36
    with pytest.raises(DataError, match=r"has no split 'val'; its splits are: train, test, all, "
                                        "seen, unseen$"):
        open_collection(idx_folder, split="val")


def test_image_folder_and_manifest(make_folder):
    root = make_folder({"a": ["1.png", "2.png"], "b": ["1.png"]})
    folder = open_collection(str(root), split="train")
    assert isinstance(folder, FileCollection) and len(folder) == 3
    (root.parent / "list.csv").write_text("path,label\nimages/a/1.png,x\nimages/b/1.png,y\n")
    manifest = open_collection(root.parent / "list.csv")
    assert isinstance(manifest, FileCollection) and manifest.class_names == ["x", "y"]


def test_unknown_or_missing_spec(tmp_path):
    with pytest.raises(DataError, match="nowhere: no such file or folder \\(expected "
                                        "'fashion-mnist', a folder of IDX files"):
        open_collection(str(tmp_path / "nowhere"))
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(DataError, match=r"notes\.txt: not a folder or a \.csv manifest"):
        open_collection(other)


def test_skip_bad_drops_counts_and_reports(make_folder):
    root = make_folder({"a": ["1.png", "2.png", "3.png"], "b": ["1.png", "2.png"]})
    (root / "a" / "2.png").write_bytes(b"not a png")
    data = (root / "b" / "1.png").read_bytes()
    (root / "b" / "1.png").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match=r"skipped 2 bad images of 5 \(first: .*a/2.png: not"):
        collection = open_collection(root, skip_bad=True, progress=False)
    assert len(collection) == 3
    assert [Path(p).relative_to(root).as_posix() for p, _ in collection.skipped] == [
        "a/2.png", "b/1.png"]
    assert "truncated" in collection.skipped[1][1]
    # without skip_bad the bad file fails when it is used, naming it
    plain = open_collection(root)
    assert len(plain) == 5
    with pytest.raises(BadImageError, match=r"a/2\.png: not an image file"):
        plain.load(1)


def test_skip_bad_drops_missing_manifest_rows(make_folder):
    root = make_folder({"a": ["1.png"], "b": ["1.png"]})
    csv = root / "list.csv"
    csv.write_text("path,label\na/1.png,a\nb/1.png,b\nb/9.png,b\n")
    with pytest.raises(DataError, match=r"list\.csv:4: no such image file"):
        open_collection(csv)
    with pytest.warns(UserWarning, match="skipped 1 bad images of 3"):
        assert len(open_collection(csv, skip_bad=True, progress=False)) == 2


def test_everything_bad_is_an_error(make_folder):
    root = make_folder({"a": ["1.png"]})
    (root / "a" / "1.png").write_bytes(b"x")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no usable images"):
        open_collection(root, skip_bad=True, progress=False)


@pytest.mark.skipif(not Path(FASHION_MNIST_ROOT).is_dir(), reason="dataset-fashion-mnist absent")
def test_fashion_mnist_by_name():
    assert len(open_collection("fashion-mnist", split="test")) == 10000
    assert open_collection("Fashion-MNIST", split="test").source(0) == "fashion-mnist/test#0"

"""read_manifest: relative paths, split column, class indices, and bad rows by line number."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.data.manifest import read_manifest
from lookalike.errors import DataError


@pytest.fixture
def manifest_dir(tmp_path, image_file):
    for name in ("a/1.png", "a/2.png", "b/1.png", "c/1.png"):
        image_file(tmp_path / "data" / name)
    return tmp_path / "data"


def write(folder, text, name="list.csv"):
    path = folder / name
    path.write_text(text)
    return path


def test_relative_paths_and_labels(manifest_dir):
    csv = write(manifest_dir, "path,label\na/1.png,cat\nb/1.png,dog10\na/2.png,cat\n"
                              "c/1.png,dog2\n")
    collection = read_manifest(csv)
    assert collection.class_names == ["cat", "dog2", "dog10"]
    np.testing.assert_array_equal(collection.labels, [0, 2, 0, 1])
    assert collection.source(1) == str(manifest_dir / "b" / "1.png")
    assert collection.splits is None
    assert collection.load(0).mode == "RGB"


def test_paths_are_relative_to_the_csv_not_the_working_directory(manifest_dir, monkeypatch,
                                                                 tmp_path):
    sub = manifest_dir / "lists"
    sub.mkdir()
    csv = write(sub, "label,path\ncat,../a/1.png\ndog," + str(manifest_dir / "b/1.png") + "\n")
    monkeypatch.chdir(tmp_path)
    collection = read_manifest(csv)
    assert collection.load(0).size == (12, 10) and collection.load(1).size == (12, 10)


def test_split_column(manifest_dir):
    csv = write(manifest_dir, "path,label,split\na/1.png,cat,train\nb/1.png,dog,test\n"
                              "a/2.png,cat,train\nc/1.png,eel,test\n")
    train = read_manifest(csv, split="train")
    test = read_manifest(csv, split="test")
    assert train.class_names == test.class_names == ["cat", "dog", "eel"]
    np.testing.assert_array_equal(train.labels, [0, 0])
    np.testing.assert_array_equal(test.labels, [1, 2])
    assert list(read_manifest(csv).splits) == ["train", "test", "train", "test"]
    assert len(read_manifest(csv, split="all")) == 4
    with pytest.raises(DataError, match=r"list.csv has no split 'val'; its splits are: test, "
                                        "train, all, seen, unseen$"):
        read_manifest(csv, split="val")


def test_without_a_split_column_train_test_and_all_read_every_row(manifest_dir):
    csv = write(manifest_dir, "path,label\na/1.png,cat\nb/1.png,dog\n")
    for split in (None, "all", "train", "test"):
        assert len(read_manifest(csv, split=split)) == 2
    with pytest.raises(DataError, match=r"list.csv has no split 'val'; its splits are: all "
                                        r"\(also called train and test"):
        read_manifest(csv, split="val")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,label\na/1.png,cat\nb/1.png\n", r"list.csv:3: expected 2 fields"),
        ("path,label\na/1.png,cat\n\nb/1.png,dog,extra\n", r"list.csv:4: expected 2 fields"),
        ("path,label\na/1.png,\n", r"list.csv:2: empty label"),
        ("path,label\n ,cat\n", r"list.csv:2: empty path"),
        ("file,label\na/1.png,cat\n", r"list.csv:1: header must name .* \(missing path\)"),
        ("", r"list.csv:1: header must name"),
        ("path,label\n", r"list.csv: the manifest lists no images"),
        ("path,label\na/1.png,cat\nzz/9.png,dog\n", r"list.csv:3: no such image file .*9.png"),
    ],
)
def test_bad_rows_name_the_line(manifest_dir, text, message):
    with pytest.raises(DataError, match=message):
        read_manifest(write(manifest_dir, text))


def test_missing_files_can_be_left_for_skip_bad(manifest_dir):
    csv = write(manifest_dir, "path,label\na/1.png,cat\nzz/9.png,dog\n")
    assert len(read_manifest(csv, check_files=False)) == 2


def test_missing_manifest(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such manifest file"):
        read_manifest(tmp_path / "nope.csv")

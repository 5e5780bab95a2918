"""read_idx / read_idx_pair: round trips and every header check, raw and gzipped."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from lookalike.data.idx import read_idx, read_idx_pair
from lookalike.errors import DataError


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, write_idx, suffix, dtype):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    path = write_idx(tmp_path / f"x-idx3{suffix}", array)
    read = read_idx(path)
    assert read.dtype == np.dtype(dtype) and read.dtype.isnative
    assert read.shape == (2, 3, 5)
    np.testing.assert_array_equal(read, array)
    read[0, 0, 0] = 1  # writeable, not a view of the file's bytes


def test_gzip_detected_by_content(tmp_path, write_idx):
    path = tmp_path / "labels-idx1-ubyte"  # no .gz in the name
    path.write_bytes(gzip.compress((write_idx(tmp_path / "raw", np.arange(4, dtype=np.uint8))
                                    ).read_bytes()))
    np.testing.assert_array_equal(read_idx(path), np.arange(4))


def test_bad_magic(tmp_path, write_idx):
    path = write_idx(tmp_path / "bad", np.zeros((2, 2), np.uint8))
    data = bytearray(path.read_bytes())
    data[0] = 0x1F
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"bad.*bad magic number"):
        read_idx(path)


def test_unknown_dtype_code(tmp_path, write_idx):
    path = write_idx(tmp_path / "code", np.zeros((2, 2), np.uint8))
    data = bytearray(path.read_bytes())
    data[2] = 0x07
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="code: unknown IDX dtype code 0x07"):
        read_idx(path)


@pytest.mark.parametrize("change", ["truncated", "extra"])
def test_size_must_match_dimensions(tmp_path, write_idx, change):
    path = write_idx(tmp_path / "sized", np.zeros((3, 4, 4), np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[:-5] if change == "truncated" else data + b"\0")
    with pytest.raises(DataError, match=r"sized: IDX size mismatch: header says shape \(3, 4, 4\)"):
        read_idx(path)


def test_truncated_header_and_tiny_file(tmp_path):
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2]))
    with pytest.raises(DataError, match="short: truncated IDX header"):
        read_idx(short)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\0\0")
    with pytest.raises(DataError, match="tiny: not an IDX file"):
        read_idx(tiny)


def test_missing_and_damaged_gzip(tmp_path):
    with pytest.raises(DataError, match="nope: no such IDX file"):
        read_idx(tmp_path / "nope")
    damaged = tmp_path / "damaged.gz"
    damaged.write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x10" + bytes(16))[:-10])
    with pytest.raises(DataError, match=r"damaged\.gz: damaged gzip data"):
        read_idx(damaged)


def test_pair_checks(tmp_path, write_idx):
    images = write_idx(tmp_path / "images", np.zeros((5, 4, 4), np.uint8))
    labels = write_idx(tmp_path / "labels", np.arange(5, dtype=np.uint8))
    pixels, read_labels = read_idx_pair(images, labels)
    assert pixels.shape == (5, 4, 4) and read_labels.dtype == np.int64
    short = write_idx(tmp_path / "short_labels", np.arange(4, dtype=np.uint8))
    with pytest.raises(DataError, match="short_labels: 4 labels for 5 images"):
        read_idx_pair(images, short)
    with pytest.raises(DataError, match="labels: expected uint8 images"):
        read_idx_pair(labels, labels)
    with pytest.raises(DataError, match="images: expected integer labels of shape"):
        read_idx_pair(images, images)

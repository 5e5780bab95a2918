"""Read IDX files (the MNIST / Fashion-MNIST container format), raw or gzipped, via numpy.

An IDX file is a 4-byte magic number ``0 0 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the values in C order, big-endian. Every part is checked so that a
truncated download or a swapped file fails here, with the file named, and not as a shape
error deep inside training.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from lookalike.errors import DataError

# dtype code -> big-endian numpy dtype (Y. LeCun's IDX specification)
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it is gzipped (detected by content, not name)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such IDX file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: damaged gzip data ({exc})") from None


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file into a native-endian, writeable numpy array of its stored shape.

    Args:
        path: an IDX file, raw or gzipped (``.gz``), e.g. ``train-images-idx3-ubyte.gz``.

    Returns:
        The array, e.g. (N, 28, 28) uint8 for images or (N,) uint8 for labels.

    Raises:
        DataError: naming the file, for a bad magic number, an unknown dtype code, or a
            size that does not match the header's dimensions.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: not an IDX file (only {len(data)} bytes)")
    zero1, zero2, code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number 0x{data[:4].hex()})")
    if code not in IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX dtype code 0x{code:02x}")
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes, need {header})")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(
            f"{path}: IDX size mismatch: header says shape {shape} ({expected} bytes), "
            f"file has {len(data)} bytes"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # a native-endian, writeable copy


def read_idx_pair(
    images_path: str | os.PathLike[str], labels_path: str | os.PathLike[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Read an images/labels IDX pair and check that they belong together.

    Returns:
        pixels (N, H, W) or (N, H, W, 3) uint8, labels (N,) int64.
    """
    pixels, labels = read_idx(images_path), read_idx(labels_path)
    if pixels.dtype != np.uint8 or not (
        pixels.ndim == 3 or (pixels.ndim == 4 and pixels.shape[-1] == 3)
    ):
        raise DataError(
            f"{images_path}: expected uint8 images of shape (N, H, W) or (N, H, W, 3), "
            f"got {pixels.dtype} {pixels.shape}"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{labels_path}: expected integer labels of shape (N,), got {labels.shape}")
    if len(labels) != len(pixels):
        raise DataError(
            f"{labels_path}: {len(labels)} labels for {len(pixels)} images in {images_path}"
        )
    if len(labels) and labels.min() < 0:
        raise DataError(f"{labels_path}: negative label {int(labels.min())}")
    return pixels, labels.astype(np.int64)

"""Tiny self-made data for the data-layer tests: IDX pairs, image folders, odd image files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding written by hand from the specification (independent of lookalike)."""
    array = np.asarray(array)
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim])
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def write_idx():
    """write_idx(path, array) writes an IDX file, gzipped when the name ends in .gz."""

    def write(path: Path, array: np.ndarray) -> Path:
        data = idx_bytes(array)
        path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
        return path

    return write


@pytest.fixture
def idx_folder(tmp_path, write_idx):
    """A Fashion-MNIST-shaped folder: train 24 items (gzipped), test 12 items (raw), 8x8,
    labels i % 4 and each image filled with its own index so items can be told apart."""
    folder = tmp_path / "idx"
    folder.mkdir()
    for prefix, count, gz in (("train", 24, ".gz"), ("t10k", 12, "")):
        pixels = np.stack([np.full((8, 8), i, dtype=np.uint8) for i in range(count)])
        pixels[:, 0, 0] = 200  # a marker, so orientation mistakes show
        write_idx(folder / f"{prefix}-images-idx3-ubyte{gz}", pixels)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{gz}", np.arange(count, dtype=np.uint8) % 4)
    return folder


def save_image(path: Path, size=(12, 10), mode="RGB", seed=0, **kwargs) -> Path:
    """Save a random image of ``size`` (width, height) and ``mode`` at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1}[mode]
    shape = (size[1], size[0], channels) if channels > 1 else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path, **kwargs)
    return path


@pytest.fixture
def make_folder(tmp_path):
    """make_folder({"cat": ["1.png", "sub/2.jpg"], ...}) writes a class-per-folder tree."""

    def make(layout: dict[str, list[str]], root: Path | None = None) -> Path:
        root = root or tmp_path / "images"
        root.mkdir(parents=True, exist_ok=True)
        for k, (name, files) in enumerate(layout.items()):
            (root / name).mkdir(parents=True, exist_ok=True)
            for j, file in enumerate(files):
                path = root / name / file
                if Path(file).suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".gif",
                                                  ".webp", ".tif", ".tiff"}:
                    save_image(path, seed=100 * k + j)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text("not an image")
        return root

    return make


@pytest.fixture
def image_file():
    """image_file(path, size=(w, h), mode="RGB", seed=0, **save_kwargs) saves a random image."""
    return save_image

"""One entry point from a ``--data`` string to a labelled ``ImageCollection``.

The spec is one of: ``fashion-mnist`` (the Debian package's files), a folder of IDX files
(recognised by their file names), an image folder (one sub-folder per class), or a ``.csv``
manifest (``path,label[,split]``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from lookalike.data.fashion_mnist import has_idx_files, load_fashion_mnist
from lookalike.data.folder import scan_image_folder
from lookalike.data.images import DEFAULT_MAX_PIXELS
from lookalike.data.manifest import read_manifest
from lookalike.data.records import FileCollection, ImageCollection
from lookalike.errors import DataError

FASHION_MNIST_NAMES = ("fashion-mnist", "fashion_mnist", "fashionmnist")
SPEC_HELP = "expected 'fashion-mnist', a folder of IDX files, an image folder or a .csv manifest"


def _idx_split(spec: str, split: str | None) -> str:
    """IDX data has train and test files only; None means both."""
    if split is None:
        return "all"
    if split not in ("train", "test", "all"):
        raise DataError(f"{spec}: IDX data has the splits train and test, not {split!r}")
    return split


def open_collection(spec: str | os.PathLike[str], split: str | None = None,
                    skip_bad: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                    progress: bool = True) -> ImageCollection:
    """Open the labelled images a ``--data`` spec names.

    Args:
        spec: "fashion-mnist", an IDX folder, an image folder, or a .csv manifest.
        split: "train", "test"... where the source has splits (IDX files, a manifest's split
            column, train/ test/ sub-folders); None takes everything.
        skip_bad: decode every image file now and drop the bad ones, with a warning that
            counts them (the list is kept in ``collection.skipped``). Without it, files are
            decoded only when used and the first bad one raises ``BadImageError``.
        max_pixels: refuse images above this many pixels (decompression bombs).
        progress: show a progress bar while checking files (with ``skip_bad``).
    """
    text = os.fspath(spec)
    if text.lower() in FASHION_MNIST_NAMES:
        return load_fashion_mnist(_idx_split(text, split))
    path = Path(text).expanduser()
    collection: ImageCollection
    if path.is_file() and path.suffix.lower() == ".csv":
        collection = read_manifest(path, split, check_files=not skip_bad, max_pixels=max_pixels)
    elif has_idx_files(path):
        return load_fashion_mnist(_idx_split(text, split), root=path)
    elif path.is_dir():
        collection = scan_image_folder(path, split, max_pixels=max_pixels)
    elif path.exists():
        raise DataError(f"{path}: not a folder or a .csv manifest ({SPEC_HELP})")
    else:
        raise DataError(f"{text}: no such file or folder ({SPEC_HELP})")
    if skip_bad and isinstance(collection, FileCollection):
        collection, bad = collection.validate(skip_bad=True, progress=progress)
        if bad:
            example = bad[0][1]
            warnings.warn(f"{text}: skipped {len(bad)} bad images of {len(bad) + len(collection)}"
                          f" (first: {example})", stacklevel=2)
    if len(collection) == 0:
        raise DataError(f"{text}: no usable images")
    return collection

"""One entry point from a ``--data`` string to a labelled ``ImageCollection``.

The spec is one of: ``fashion-mnist`` (the Debian package's files), a folder of IDX files
(recognised by their file names), a benchmark's published folder (CUB-200-2011, Cars196,
Stanford Online Products: recognised by their listing files), an image folder (one
sub-folder per class), or a ``.csv`` manifest (``path,label[,split]``).

Besides a source's own splits, every source has the split "all" (everything) and the
splits "seen" and "unseen" of the unseen-class protocol (``split_seen_unseen``): train on
one half of the classes, evaluate retrieval on the other. A split the source lacks is an
error that lists the ones it has.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from lookalike.data.benchmarks import open_benchmark
from lookalike.data.fashion_mnist import SPLIT_PREFIXES, has_idx_files, load_fashion_mnist
from lookalike.data.folder import scan_image_folder
from lookalike.data.images import DEFAULT_MAX_PIXELS
from lookalike.data.manifest import read_manifest
from lookalike.data.records import FileCollection, ImageCollection
from lookalike.data.splits import ALL, SEEN, UNSEEN_CLASS_SPLITS, split_seen_unseen, whole_split
from lookalike.errors import DataError

FASHION_MNIST_NAMES = ("fashion-mnist", "fashion_mnist", "fashionmnist")
IDX_SPLITS = tuple(SPLIT_PREFIXES)
SPEC_HELP = ("expected 'fashion-mnist', a folder of IDX files, a CUB-200-2011 / Cars196 / "
             "Stanford Online Products folder, an image folder or a .csv manifest")


def _idx_split(spec: str, split: str | None) -> str:
    """IDX data has train and test files only; None means both ("all")."""
    return whole_split(spec, split, own=IDX_SPLITS) or ALL


def _read_source(text: str, split: str | None, skip_bad: bool,
                 max_pixels: int | None) -> ImageCollection:
    """The collection ``text`` names, recognised in this order: Fashion-MNIST by name, a .csv
    manifest, a folder of IDX files, a benchmark layout, a class-per-folder tree."""
    if text.lower() in FASHION_MNIST_NAMES:
        return load_fashion_mnist(_idx_split(text, split))
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() == ".csv":
        return read_manifest(path, split, check_files=not skip_bad, max_pixels=max_pixels)
    if has_idx_files(path):
        return load_fashion_mnist(_idx_split(text, split), root=path)
    benchmark = open_benchmark(path, split, check_files=not skip_bad, max_pixels=max_pixels)
    if benchmark is not None:
        return benchmark
    if path.is_dir():
        return scan_image_folder(path, split, max_pixels=max_pixels)
    if path.exists():
        raise DataError(f"{path}: not a folder or a .csv manifest ({SPEC_HELP})")
    raise DataError(f"{text}: no such file or folder ({SPEC_HELP})")


def open_collection(spec: str | os.PathLike[str], split: str | None = None,
                    skip_bad: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                    progress: bool = True) -> ImageCollection:
    """Open the labelled images a ``--data`` spec names.

    Args:
        spec: "fashion-mnist", an IDX folder, a benchmark folder, an image folder, or a .csv
            manifest.
        split: "train", "test"... where the source has splits (IDX files, the benchmarks'
            standard class halves, a manifest's split column, train/ test/ sub-folders);
            "seen" / "unseen" for the unseen-class protocol of any source (see
            ``split_seen_unseen``); None or "all" takes everything, and so do "train" and
            "test" for a source without splits of its own (a plain class folder, a manifest
            without a split column). Any other name is a ``DataError`` that lists the
            splits the source has.
        skip_bad: decode every image file now and drop the bad ones, with a warning that
            counts them (the list is kept in ``collection.skipped``). Without it, files are
            decoded only when used and the first bad one raises ``BadImageError``.
        max_pixels: refuse images above this many pixels (decompression bombs).
        progress: show a progress bar while checking files (with ``skip_bad``).
    """
    if split in UNSEEN_CLASS_SPLITS:
        seen, unseen = open_seen_unseen(spec, skip_bad, max_pixels, progress)
        return seen if split == SEEN else unseen
    text = os.fspath(spec)
    collection = _read_source(text, split, skip_bad, max_pixels)
    if skip_bad and isinstance(collection, FileCollection):
        collection, bad = collection.validate(skip_bad=True, progress=progress)
        if bad:
            example = bad[0][1]
            warnings.warn(f"{text}: skipped {len(bad)} bad images of {len(bad) + len(collection)}"
                          f" (first: {example})", stacklevel=2)
    if len(collection) == 0:
        raise DataError(f"{text}: no usable images")
    return collection


def open_seen_unseen(spec: str | os.PathLike[str], skip_bad: bool = False,
                     max_pixels: int | None = DEFAULT_MAX_PIXELS,
                     progress: bool = True) -> tuple[ImageCollection, ImageCollection]:
    """The "seen" and "unseen" halves of a ``--data`` spec, read once.

    Both keep the whole collection's class names, so label i names the same class in each.
    """
    whole = open_collection(spec, None, skip_bad, max_pixels, progress)
    try:
        seen_idx, unseen_idx = split_seen_unseen(whole.labels, whole.splits)
    except DataError as exc:
        raise DataError(f"{os.fspath(spec)}: {exc} (to split seen from unseen classes)") from None
    return whole.subset(seen_idx), whole.subset(unseen_idx)

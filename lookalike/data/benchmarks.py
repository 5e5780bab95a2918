"""Recognise the published layouts of the metric-learning benchmarks in a ``--data`` path.

CUB-200-2011, Cars196 and Stanford Online Products are read from the files their authors
distribute (nothing is downloaded); each reader records the standard unseen-class split as
``splits`` "train"/"test". ``open_benchmark`` tries them in turn, so that
``--data ~/data/CUB_200_2011`` is read as CUB and not scanned as a plain image folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from lookalike.data.cars196 import find_cars_annotations, load_cars196
from lookalike.data.cub import find_cub_root, load_cub200
from lookalike.data.images import DEFAULT_MAX_PIXELS
from lookalike.data.online_products import find_sop_root, load_online_products
from lookalike.data.records import FileCollection

Finder = Callable[[str | os.PathLike[str]], Path | None]
Loader = Callable[..., FileCollection]

BENCHMARKS: dict[str, tuple[Finder, Loader]] = {
    "cub200": (find_cub_root, load_cub200),
    "cars196": (find_cars_annotations, load_cars196),
    "online-products": (find_sop_root, load_online_products),
}


def find_benchmark(path: str | os.PathLike[str]) -> str | None:
    """The name of the benchmark layout at ``path`` (a key of ``BENCHMARKS``), or None."""
    return next((name for name, (find, _) in BENCHMARKS.items() if find(path) is not None),
                None)


def open_benchmark(path: str | os.PathLike[str], split: str | None = None,
                   check_files: bool = True,
                   max_pixels: int | None = DEFAULT_MAX_PIXELS) -> FileCollection | None:
    """Read ``path`` with the reader of its benchmark layout; None when it has none.

    Args:
        path: e.g. ``CUB_200_2011/`` (or its parent), the Cars196 folder, or
            ``Stanford_Online_Products/`` (or its parent).
        split: "train" or "test" (the standard class halves); None reads everything.
        check_files: fail now on an image file that the listing names but that is absent.
        max_pixels: the decode cap passed on to the collection.
    """
    for find, load in BENCHMARKS.values():
        root = find(path)
        if root is not None:
            return load(root, split, check_files=check_files, max_pixels=max_pixels)
    return None

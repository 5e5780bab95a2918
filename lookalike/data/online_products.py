"""Stanford Online Products (Oh Song et al. 2016) from its published folder.

120 053 product photos of 22 634 products (classes) in 12 super-classes. The folder
``Stanford_Online_Products/`` holds ``Ebay_train.txt`` and ``Ebay_test.txt``, each with the
header ``image_id class_id super_class_id path`` and paths relative to that folder
("bicycle_final/111085122871_0.JPG"). The files are the standard unseen-class split:
classes 1-11 318 train, 11 319-22 634 test.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lookalike.data.images import DEFAULT_MAX_PIXELS
from lookalike.data.listing import check_images_exist, choose_split, listing_folder, read_listing
from lookalike.data.records import FileCollection

SOP_FOLDER = "Stanford_Online_Products"
SOP_LISTINGS = {"train": "Ebay_train.txt", "test": "Ebay_test.txt"}
SOP_COLUMNS = {"image_id": int, "class_id": int, "super_class_id": int, "path": str}


def find_sop_root(path: str | os.PathLike[str]) -> Path | None:
    """The Stanford Online Products folder at ``path`` or in it; None if neither holds an
    Ebay_train.txt or Ebay_test.txt."""
    path = Path(path)
    for root in (path, path / SOP_FOLDER):
        if any((root / name).is_file() for name in SOP_LISTINGS.values()):
            return root
    return None


def _class_name(class_id: int, path: str, super_class_id: int) -> str:
    """"<super-class folder>/<class id>", e.g. "bicycle_final/1": readable in result grids."""
    folder, slash, _ = path.replace("\\", "/").partition("/")
    return f"{folder if slash else super_class_id}/{class_id}"


def load_online_products(root: str | os.PathLike[str], split: str | None = None,
                         check_files: bool = True,
                         max_pixels: int | None = DEFAULT_MAX_PIXELS) -> FileCollection:
    """Read Stanford Online Products with its own train / test files.

    Args:
        root: the ``Stanford_Online_Products`` folder, or the folder that holds it.
        split: "train" (Ebay_train.txt), "test" (Ebay_test.txt) or None for both.
        check_files: fail now, naming the listing line, on an image file that does not exist.
        max_pixels: the decode cap passed on to the collection.

    Returns:
        A FileCollection with labels 0..C-1 in class-id order over both files, class names
        "<super-class folder>/<class id>" and ``splits`` "train"/"test".
    """
    folder = listing_folder(root, find_sop_root, list(SOP_LISTINGS.values()),
                            "Stanford Online Products")
    rows = []  # (part, listing, line, class_id, super_class_id, path)
    for part, name in SOP_LISTINGS.items():
        listing = folder / name
        for line, (_, class_id, super_id, path) in read_listing(listing, SOP_COLUMNS, header=True):
            rows.append((part, listing, line, class_id, super_id, path))
    names_by_id: dict[int, str] = {}
    for _, _, _, class_id, super_id, path in rows:
        names_by_id.setdefault(class_id, _class_name(class_id, path, super_id))
    class_ids = sorted(names_by_id)
    index = {class_id: i for i, class_id in enumerate(class_ids)}
    paths = [os.path.join(folder, row[5]) for row in rows]
    if check_files:
        check_images_exist(paths, lambda i: f"{rows[i][1]}:{rows[i][2]}")
    labels = np.array([index[row[3]] for row in rows], dtype=np.int64)
    splits = np.array([row[0] for row in rows])
    paths, labels, splits = choose_split(paths, labels, splits, split,
                                         "Stanford Online Products", folder)
    return FileCollection(paths, labels, [names_by_id[c] for c in class_ids], splits=splits,
                          max_pixels=max_pixels)

"""CUB-200-2011 (Wah et al. 2011) from its published folder, as a ``FileCollection``.

11 788 bird photos of 200 species. The folder ``CUB_200_2011/`` holds ``images.txt``
(``<image_id> <path>``, relative to ``images/``), ``image_class_labels.txt``
(``<image_id> <class_id>``), ``classes.txt`` (``<class_id> <name>``) and ``images/``.
Metric-learning papers (Oh Song et al. 2016 and after) train on classes 1-100 and test
retrieval on the unseen classes 101-200; that split is ``splits`` here ("train"/"test"),
not the file ``train_test_split.txt``, which splits every class's images.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lookalike.data.images import DEFAULT_MAX_PIXELS
from lookalike.data.listing import (
    check_images_exist,
    choose_split,
    first_half_split,
    listing_folder,
    read_listing,
)
from lookalike.data.records import FileCollection
from lookalike.errors import DataError

CUB_FOLDER = "CUB_200_2011"
CUB_LISTINGS = ("images.txt", "image_class_labels.txt", "classes.txt")
IMAGE_COLUMNS = {"image_id": int, "path": str}
LABEL_COLUMNS = {"image_id": int, "class_id": int}
CLASS_COLUMNS = {"class_id": int, "name": str}


def find_cub_root(path: str | os.PathLike[str]) -> Path | None:
    """The CUB folder at ``path`` or in it (``path/CUB_200_2011``); None if neither looks like
    one. A folder counts when it is named CUB_200_2011 or holds images.txt and images/."""
    path = Path(path)
    for root in (path, path / CUB_FOLDER):
        if root.is_dir() and (root.name == CUB_FOLDER
                              or ((root / "images.txt").is_file() and (root / "images").is_dir())):
            return root
    return None


def _by_id(path: Path, rows: list, what: str) -> dict[int, tuple[int, object]]:
    """id -> (line, value) of a two-column listing, refusing repeated ids."""
    table: dict[int, tuple[int, object]] = {}
    for line, (key, value) in rows:
        if key in table:
            raise DataError(f"{path}:{line}: {what} id {key} is listed twice "
                            f"(first on line {table[key][0]})")
        table[key] = (line, value)
    return table


def load_cub200(root: str | os.PathLike[str], split: str | None = None,
                check_files: bool = True,
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> FileCollection:
    """Read CUB-200-2011 with its standard unseen-class split.

    Args:
        root: the ``CUB_200_2011`` folder, or the folder that holds it.
        split: "train" (classes 1-100), "test" (101-200) or None for all images.
        check_files: fail now, naming the listing line, on an image file that does not exist.
        max_pixels: the decode cap passed on to the collection.

    Returns:
        A FileCollection with labels 0..199 in class-id order, class names like
        "001.Black_footed_Albatross", and ``splits`` "train"/"test".
    """
    folder = listing_folder(root, find_cub_root, CUB_LISTINGS, "CUB-200-2011")
    classes_path, labels_path = folder / "classes.txt", folder / "image_class_labels.txt"
    images_path = folder / "images.txt"
    classes = _by_id(classes_path, read_listing(classes_path, CLASS_COLUMNS), "class")
    image_labels = _by_id(labels_path, read_listing(labels_path, LABEL_COLUMNS), "image")
    images = _by_id(images_path, read_listing(images_path, IMAGE_COLUMNS), "image")
    class_ids = sorted(classes)
    index = {class_id: i for i, class_id in enumerate(class_ids)}
    paths, labels, lines = [], [], []
    for image_id, (line, relative) in images.items():  # file order
        if image_id not in image_labels:
            raise DataError(f"{labels_path}: no class for image id {image_id} "
                            f"({images_path.name} line {line})")
        label_line, class_id = image_labels[image_id]
        if class_id not in index:
            raise DataError(f"{labels_path}:{label_line}: class id {class_id} is not in "
                            f"{classes_path.name}")
        paths.append(os.path.join(folder, "images", str(relative)))
        labels.append(index[class_id])
        lines.append(line)
    if check_files:
        check_images_exist(paths, lambda i: f"{images_path}:{lines[i]}")
    label_array = np.asarray(labels, dtype=np.int64)
    names = [str(classes[c][1]) for c in class_ids]
    paths, label_array, splits = choose_split(
        paths, label_array, first_half_split(label_array, len(names)), split,
        "CUB-200-2011", folder)
    return FileCollection(paths, label_array, names, splits=splits, max_pixels=max_pixels)

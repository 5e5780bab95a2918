"""Cars196 (Stanford Cars, Krause et al. 2013) from ``cars_annos.mat`` and ``car_ims/``.

16 185 car photos of 196 make-model-year classes. ``cars_annos.mat`` holds ``annotations``,
a 1 x N struct array with the fields relative_im_path ("car_ims/000001.jpg", relative to the
.mat file's folder), bbox_x1/y1/x2/y2, class (1-196) and test (the classification split),
and ``class_names``, a 1 x 196 cell array. Metric-learning papers train on classes 1-98 and
test retrieval on the unseen classes 99-196; that split is ``splits`` here, not ``test``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lookalike.data.images import DEFAULT_MAX_PIXELS
from lookalike.data.listing import check_images_exist, choose_split, first_half_split
from lookalike.data.records import FileCollection
from lookalike.errors import DataError

CARS_ANNOTATIONS = "cars_annos.mat"
REQUIRED_FIELDS = ("relative_im_path", "class")


def find_cars_annotations(path: str | os.PathLike[str]) -> Path | None:
    """``cars_annos.mat`` when ``path`` is that file or a folder holding it, else None."""
    path = Path(path)
    candidate = path if path.name == CARS_ANNOTATIONS else path / CARS_ANNOTATIONS
    return candidate if candidate.is_file() else None


def _read_mat(path: Path) -> tuple[np.ndarray, list[str]]:
    """The annotations struct array (flattened to (N,)) and the class names."""
    from scipy.io import loadmat  # only Cars196 needs scipy.io

    try:
        mat = loadmat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (ValueError, TypeError, OSError) as exc:
        raise DataError(f"{path}: not a readable MATLAB file ({exc})") from None
    for variable in ("annotations", "class_names"):
        if variable not in mat:
            raise DataError(f"{path}: no {variable!r} variable (expected the Cars196 "
                            "cars_annos.mat)")
    annotations = np.asarray(mat["annotations"]).reshape(-1)
    fields = annotations.dtype.names or ()
    absent = [f for f in REQUIRED_FIELDS if f not in fields]
    if absent:
        raise DataError(f"{path}: 'annotations' lacks the field(s) {', '.join(absent)}")
    names = [str(np.asarray(cell).reshape(-1)[0]) for cell in
             np.asarray(mat["class_names"], dtype=object).reshape(-1)]
    return annotations, names


def load_cars196(root: str | os.PathLike[str], split: str | None = None,
                 check_files: bool = True,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> FileCollection:
    """Read Cars196 with its standard unseen-class split.

    Args:
        root: the folder with ``cars_annos.mat`` and ``car_ims/``, or the .mat file itself.
        split: "train" (classes 1-98), "test" (99-196) or None for all images.
        check_files: fail now, naming the annotation, on an image file that does not exist.
        max_pixels: the decode cap passed on to the collection.

    Returns:
        A FileCollection with labels 0..195 (class - 1), class names from ``class_names``
        (e.g. "AM General Hummer SUV 2000") and ``splits`` "train"/"test".
    """
    mat_path = find_cars_annotations(root)
    if mat_path is None:
        raise DataError(f"{root}: no {CARS_ANNOTATIONS} (the Cars196 annotations)")
    annotations, names = _read_mat(mat_path)
    if len(annotations) == 0:
        raise DataError(f"{mat_path}: 'annotations' is empty")
    paths, labels = [], []
    for number, record in enumerate(annotations, start=1):
        try:
            relative = str(np.asarray(record["relative_im_path"]).reshape(-1)[0])
            class_id = int(np.asarray(record["class"]).reshape(-1)[0])
        except (IndexError, ValueError, TypeError):
            raise DataError(f"{mat_path}: annotation {number} has no usable "
                            "relative_im_path and class") from None
        if not 1 <= class_id <= len(names):
            raise DataError(f"{mat_path}: annotation {number} has class {class_id}, "
                            f"outside 1..{len(names)} (the class_names)")
        paths.append(os.path.join(mat_path.parent, relative))
        labels.append(class_id - 1)
    if check_files:
        check_images_exist(paths, lambda i: f"{mat_path} (annotation {i + 1})")
    label_array = np.asarray(labels, dtype=np.int64)
    paths, label_array, splits = choose_split(
        paths, label_array, first_half_split(label_array, len(names)), split, "Cars196",
        mat_path.parent)
    return FileCollection(paths, label_array, names, splits=splits, max_pixels=max_pixels)

"""Tiny generated folders in the published layouts of CUB-200-2011, Cars196 and Stanford
Online Products: the same file names, listing formats and .mat structure as the real ones,
with a handful of small JPEGs (class c's images show a bright bar at a class-specific row,
so a tiny CNN can train on them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CUB_NAMES = ("001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross",
             "004.Groove_billed_Ani", "005.Crested_Auklet", "006.Least_Auklet")
CARS_NAMES = ("AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012",
              "Acura TL Type-S 2008", "Acura TSX Sedan 2012", "Acura Integra Type R 2001")
SOP_SUPER_CLASSES = ("bicycle_final", "cabinet_final", "chair_final")


def write_image(path: Path, label: int, seed: int, size: int = 16) -> Path:
    """A small RGB JPEG: noise with a bright bar at a row that depends on ``label``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 60, (size, size, 3), dtype=np.uint8)
    row = 1 + (2 * label) % (size - 3)
    pixels[row:row + 2, 1:-1] = 230
    Image.fromarray(pixels).save(path, quality=95)
    return path


def write_cub(parent: Path, classes: int = 6, per_class: int = 3) -> Path:
    """``parent/CUB_200_2011`` with classes.txt, images.txt, image_class_labels.txt,
    train_test_split.txt (which the reader must ignore) and images/<class>/<file>.jpg."""
    root = parent / "CUB_200_2011"
    names = [CUB_NAMES[c] if c < len(CUB_NAMES) else f"{c + 1:03d}.Bird_{c + 1}"
             for c in range(classes)]
    images, labels, split = [], [], []
    for c, name in enumerate(names):
        for j in range(per_class):
            image_id = len(images) + 1
            relative = f"{name}/{name[4:]}_{j:04d}_{image_id}.jpg"
            write_image(root / "images" / relative, c, seed=image_id)
            images.append(f"{image_id} {relative}")
            labels.append(f"{image_id} {c + 1}")
            split.append(f"{image_id} {j % 2}")  # the classification split: every class
    (root / "classes.txt").write_text("".join(f"{c + 1} {n}\n" for c, n in enumerate(names)))
    (root / "images.txt").write_text("\n".join(images) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (root / "train_test_split.txt").write_text("\n".join(split) + "\n")
    return root


CARS_FIELDS = ("relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test")


def cars_annotations(relative_paths: list[str], classes: list[int],
                     drop: tuple[str, ...] = ()) -> np.ndarray:
    """A 1 x N struct array with the fields of the real ``annotations`` (less ``drop``);
    its "test" flag alternates, unlike the class split the reader must use."""
    fields = [f for f in CARS_FIELDS if f not in drop]
    records = np.zeros((1, len(relative_paths)), dtype=[(f, object) for f in fields])
    for i, (relative, class_id) in enumerate(zip(relative_paths, classes, strict=True)):
        values = {"relative_im_path": relative, "bbox_x1": 1, "bbox_y1": 2, "bbox_x2": 14,
                  "bbox_y2": 12, "class": class_id, "test": i % 2}
        records[0, i] = tuple(values[f] if f == "relative_im_path" else np.uint8(values[f])
                              for f in fields)
    return records


def cell_array(names: list[str] | tuple[str, ...]) -> np.ndarray:
    """A 1 x C cell array of strings, as ``class_names`` is stored."""
    cells = np.empty((1, len(names)), dtype=object)
    for i, name in enumerate(names):
        cells[0, i] = name
    return cells


def write_cars(root: Path, classes: int = 6, per_class: int = 3) -> Path:
    """``root`` with cars_annos.mat (annotations, class_names) and car_ims/000001.jpg..."""
    from scipy.io import savemat

    names = [CARS_NAMES[c] if c < len(CARS_NAMES) else f"Car {c + 1}" for c in range(classes)]
    relative_paths, class_ids = [], []
    for i in range(classes * per_class):
        class_id = 1 + (i % classes)  # the real file is ordered by image, not by class
        relative = f"car_ims/{i + 1:06d}.jpg"
        write_image(root / relative, class_id - 1, seed=i)
        relative_paths.append(relative)
        class_ids.append(class_id)
    savemat(root / "cars_annos.mat", {"annotations": cars_annotations(relative_paths, class_ids),
                                      "class_names": cell_array(names)})
    return root


def write_sop(parent: Path, classes: int = 6, per_class: int = 3) -> Path:
    """``parent/Stanford_Online_Products`` with Ebay_train.txt (the first half of the class
    ids), Ebay_test.txt (the rest) and <super_class>_final/<product>_<k>.JPG."""
    root = parent / "Stanford_Online_Products"
    lines: dict[str, list[str]] = {"train": [], "test": []}
    image_id = 0
    for c in range(classes):
        class_id, super_id = c + 1, 1 + c % len(SOP_SUPER_CLASSES)
        part = "train" if c < (classes + 1) // 2 else "test"
        for k in range(per_class):
            image_id += 1
            relative = f"{SOP_SUPER_CLASSES[super_id - 1]}/{111085122870 + c}_{k}.JPG"
            write_image(root / relative, c, seed=image_id)
            lines[part].append(f"{image_id} {class_id} {super_id} {relative}")
    for part, rows in lines.items():
        header = "image_id class_id super_class_id path\n"
        (root / f"Ebay_{part}.txt").write_text(header + "\n".join(rows) + "\n")
    return root

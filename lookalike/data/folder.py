"""Scan an image folder with one sub-folder per class into a ``FileCollection``.

``root/<class>/**/<image>``: each class folder is searched recursively; files are kept by
extension (case-insensitive) and ordered naturally ("img2" before "img10"), so the same
tree always gives the same items in the same order. Hidden files and folders are ignored.
A root whose sub-folders are all split names (``train/``, ``val/``, ``test/``) holds one
class tree per split; class indices are shared across the splits.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from lookalike.data.images import DEFAULT_MAX_PIXELS
from lookalike.data.records import FileCollection
from lookalike.data.splits import whole_split
from lookalike.errors import DataError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
)
SPLIT_NAMES = frozenset({"train", "val", "valid", "validation", "test", "query", "gallery"})


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: "a2" < "a10"; ties broken by the text."""
    parts = re.split(r"(\d+)", text)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), text


def _visible_subfolders(root: Path) -> list[Path]:
    """The non-hidden sub-folders of ``root``, naturally sorted; errors name the folder."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    entries = [e for e in root.iterdir() if not e.name.startswith(".")]
    if not entries:
        raise DataError(f"{root}: the folder is empty")
    folders = sorted((e for e in entries if e.is_dir()), key=lambda p: natural_key(p.name))
    if not folders:
        raise DataError(f"{root}: no class folders (expected one sub-folder per class, "
                        "with that class's images inside)")
    return folders


def _images_under(folder: Path) -> tuple[list[Path], int]:
    """All image files below ``folder`` in natural order, and the count of other files."""
    images: list[Path] = []
    others = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                images.append(Path(dirpath) / name)
            else:
                others += 1
    images.sort(key=lambda p: tuple(natural_key(part) for part in p.relative_to(folder).parts))
    return images, others


def _class_tree(root: Path) -> dict[str, list[Path]]:
    """class name -> its image paths, for one ``root/<class>/**`` tree."""
    tree: dict[str, list[Path]] = {}
    skipped = sum(1 for e in root.iterdir() if e.is_file() and not e.name.startswith("."))
    for folder in _visible_subfolders(root):
        images, others = _images_under(folder)
        if not images:
            raise DataError(f"{folder}: class folder has no images "
                            f"({', '.join(sorted(e[1:] for e in IMAGE_EXTENSIONS))})")
        tree[folder.name] = images
        skipped += others
    if skipped:
        warnings.warn(f"{root}: ignored {skipped} files that are not images or lie outside "
                      "the class folders", stacklevel=3)
    return tree


def scan_image_folder(root: str | os.PathLike[str], split: str | None = None,
                      max_pixels: int | None = DEFAULT_MAX_PIXELS) -> FileCollection:
    """Scan ``root`` (one sub-folder per class) into a labelled ``FileCollection``.

    Args:
        root: the image folder.
        split: with a ``train/ val/ test/`` layout, the split to read (None or "all": all
            of them); a plain class-per-folder tree has no splits of its own, so it is read
            whole for None, "all", "train" and "test", and any other name is refused.
        max_pixels: the decode cap passed on to the collection.
    """
    root = Path(root)
    subfolders = [p.name for p in _visible_subfolders(root)]
    trees: dict[str | None, dict[str, list[Path]]]  # split (None: no split folders) -> tree
    if all(name.lower() in SPLIT_NAMES for name in subfolders):
        chosen = whole_split(root, split, own=subfolders)
        trees = {s: _class_tree(root / s) for s in ([chosen] if chosen else subfolders)}
        # class indices must agree across splits, so every split's classes are named
        every = {p.name for s in subfolders for p in _visible_subfolders(root / s)}
        names = sorted(every, key=natural_key)
    else:
        whole_split(root, split)  # refuses a split name a plain tree does not answer to
        trees = {None: _class_tree(root)}
        names = list(trees[None])  # already in natural order
    index = {name: i for i, name in enumerate(names)}
    paths = [p for tree in trees.values() for c in tree for p in tree[c]]
    labels = [index[c] for tree in trees.values() for c in tree for _ in tree[c]]
    splits = None if None in trees else np.array(
        [s for s, tree in trees.items() for c in tree for _ in tree[c]]
    )
    return FileCollection(paths, labels, names, splits=splits, max_pixels=max_pixels)


UNLABELLED = ""
"""The one class name of an unlabelled collection (``scan_images`` on a flat folder)."""


def has_loose_images(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` holds image files itself (not only in sub-folders)."""
    root = Path(root)
    return root.is_dir() and any(
        e.is_file() and not e.name.startswith(".") and e.suffix.lower() in IMAGE_EXTENSIONS
        for e in root.iterdir())


def scan_images(root: str | os.PathLike[str],
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> FileCollection:
    """Every image below ``root``, unlabelled (one class named ``UNLABELLED``), for indexing
    a folder of product photos; a folder of class sub-folders is ``scan_image_folder``'s."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    images, _ = _images_under(root)
    return FileCollection(images, np.zeros(len(images), dtype=np.int64), [UNLABELLED],
                          max_pixels=max_pixels)

"""Fashion-MNIST (Xiao et al. 2017) from its IDX files, as an in-memory ``ArrayCollection``.

70 000 grayscale 28x28 fashion-product images in 10 classes: 60 000 train, 10 000 test.
Nothing is downloaded: the Debian package ``dataset-fashion-mnist`` installs the files under
``/usr/share/datasets/fashion-mnist/``, or any folder with the same four IDX files is used
(MNIST-style folders too; their class names come from a ``classes.txt`` next to them).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lookalike.data.idx import read_idx_pair
from lookalike.data.records import ArrayCollection
from lookalike.errors import DataError

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
SPLIT_PREFIXES = {"train": "train", "test": "t10k"}
INSTALL_HINT = (
    "install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
    "or pass --data PATH to a folder with the IDX files"
)


def find_idx_pair(root: str | os.PathLike[str], split: str) -> tuple[Path, Path] | None:
    """The (images, labels) IDX files of ``split`` in ``root``, raw or .gz; None if absent."""
    prefix = SPLIT_PREFIXES[split]
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        kind_dot = kind.replace("-", ".", 1)  # "train-images.idx3-ubyte", as some mirrors name it
        names = [f"{prefix}-{k}{gz}" for k in (kind, kind_dot) for gz in ("", ".gz")]
        match = next((Path(root) / n for n in names if (Path(root) / n).is_file()), None)
        if match is None:
            return None
        found.append(match)
    return found[0], found[1]


def has_idx_files(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` is a folder holding the IDX pair of at least one split."""
    return Path(root).is_dir() and any(find_idx_pair(root, s) for s in SPLIT_PREFIXES)


def _class_names(root: Path, num_labels: int) -> tuple[str, ...]:
    """classes.txt (one name per line) when the folder has one, else Fashion-MNIST's names."""
    listing = root / "classes.txt"
    if listing.is_file():
        names = tuple(line.strip() for line in listing.read_text().splitlines() if line.strip())
    else:
        names = FASHION_MNIST_CLASSES
    if num_labels > len(names):
        raise DataError(f"{root}: labels go up to {num_labels - 1} but there are only "
                        f"{len(names)} class names (write one per line in classes.txt)")
    return names


def load_fashion_mnist(split: str = "train",
                       root: str | os.PathLike[str] | None = None) -> ArrayCollection:
    """Load a Fashion-MNIST split ("train", "test" or "all": both, train first).

    Args:
        split: which IDX pair to read; "all" records each item's split in ``splits``.
        root: the folder with the IDX files (default: the Debian package's folder).

    Returns:
        An ArrayCollection with pixels (N, 28, 28) uint8 and labels (N,) int64.
    """
    if split not in (*SPLIT_PREFIXES, "all"):
        raise DataError(f"unknown Fashion-MNIST split {split!r}; choose train, test or all")
    folder = FASHION_MNIST_ROOT if root is None else Path(root)
    name = "fashion-mnist" if root is None else str(folder)
    parts = []
    for part in SPLIT_PREFIXES if split == "all" else (split,):
        pair = find_idx_pair(folder, part)
        if pair is None:
            prefix = SPLIT_PREFIXES[part]
            raise DataError(
                f"{folder}: Fashion-MNIST {part} files not found ({prefix}-images-idx3-ubyte"
                f"[.gz], {prefix}-labels-idx1-ubyte[.gz]); {INSTALL_HINT}"
            )
        parts.append((part, *read_idx_pair(*pair)))
    pixels = np.concatenate([p for _, p, _ in parts]) if len(parts) > 1 else parts[0][1]
    labels = np.concatenate([lab for _, _, lab in parts])
    splits = np.concatenate([np.full(len(lab), part) for part, _, lab in parts])
    ids = np.concatenate([np.arange(len(lab)) for _, _, lab in parts])
    class_names = _class_names(folder, int(labels.max()) + 1 if len(labels) else 0)
    return ArrayCollection(pixels, labels, class_names, name=name, splits=splits, ids=ids)

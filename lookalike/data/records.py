"""Labelled image collections: the common currency of every data source.

An IDX pair, an image folder and a CSV manifest all become an ``ImageCollection``: integer
labels (N,), class names, a way to name item i (``source``) and to decode it (``load``).
``ArrayCollection`` keeps uint8 pixels in memory so that training can slice whole batches;
``FileCollection`` keeps paths and decodes each file safely on demand.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from lookalike.data.images import DEFAULT_MAX_PIXELS, decode_image
from lookalike.errors import BadImageError, DataError

Indices = Sequence[int] | np.ndarray | torch.Tensor
SplitNames = Sequence[str] | np.ndarray | None


def as_indices(indices: Indices, size: int) -> np.ndarray:
    """Any index list -> (K,) int64 numpy array, checked to lie in [0, size)."""
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    array = np.asarray(indices, dtype=np.int64).reshape(-1)
    if array.size and (array.min() < 0 or array.max() >= size):
        bad = array[(array < 0) | (array >= size)][0]
        raise IndexError(f"index {bad} is out of range for a collection of {size} items")
    return array


class ImageCollection(ABC):
    """N labelled images: ``labels`` (N,) int64 in [0, C), ``class_names`` (C,), and
    ``splits`` (N,) str (e.g. "train"/"test") where the source says, else None."""

    labels: np.ndarray
    class_names: list[str]
    splits: np.ndarray | None

    def _set_labels(self, labels: Indices, class_names: Sequence[str],
                    splits: SplitNames) -> None:
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.class_names = [str(name) for name in class_names]
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(class_names)):
            bad = self.labels[(self.labels < 0) | (self.labels >= len(class_names))][0]
            raise DataError(f"label {bad} has no class name ({len(class_names)} classes)")
        self.splits = None if splits is None else np.asarray(splits, dtype=str)
        if self.splits is not None and len(self.splits) != len(self.labels):
            raise DataError(f"{len(self.splits)} split names for {len(self.labels)} items")

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> np.ndarray:
        """(C,) int64: how many items each class has."""
        return np.bincount(self.labels, minlength=len(self.class_names))

    @abstractmethod
    def source(self, i: int) -> str:
        """Where item i comes from: a file path, or e.g. ``fashion-mnist/train#123``."""

    @abstractmethod
    def load(self, i: int) -> Image.Image:
        """Item i decoded as a Pillow image of mode "L" or "RGB"."""

    @abstractmethod
    def subset(self, indices: Indices) -> ImageCollection:
        """The items at ``indices``, in that order; class names and indices are kept."""


class ArrayCollection(ImageCollection):
    """Images held in memory as uint8 ``pixels`` (N, H, W) or (N, H, W, 3), e.g. IDX data.

    Args:
        pixels: (N, H, W) grayscale or (N, H, W, 3) RGB, uint8.
        labels: (N,) integers in [0, len(class_names)).
        name: prefix of ``source`` (``{name}/{split}#{id}``).
        ids: (N,) the items' numbers within their source (default 0..N-1).
    """

    def __init__(self, pixels: np.ndarray, labels: Indices, class_names: Sequence[str],
                 name: str = "array", splits: SplitNames = None,
                 ids: np.ndarray | None = None) -> None:
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or not (
            pixels.ndim == 3 or (pixels.ndim == 4 and pixels.shape[-1] == 3)
        ):
            raise DataError(f"{name}: pixels must be uint8 (N, H, W) or (N, H, W, 3), "
                            f"got {pixels.dtype} {pixels.shape}")
        self._set_labels(labels, class_names, splits)
        if len(pixels) != len(self.labels):
            raise DataError(f"{name}: {len(self.labels)} labels for {len(pixels)} images")
        self.pixels = pixels if pixels.flags.writeable else pixels.copy()
        self.name = name
        self.ids = np.arange(len(pixels)) if ids is None else np.asarray(ids, dtype=np.int64)

    def source(self, i: int) -> str:
        split = f"/{self.splits[i]}" if self.splits is not None else ""
        return f"{self.name}{split}#{self.ids[i]}"

    def load(self, i: int) -> Image.Image:
        return Image.fromarray(self.pixels[i], mode="L" if self.pixels.ndim == 3 else "RGB")

    def subset(self, indices: Indices) -> ArrayCollection:
        rows = as_indices(indices, len(self))
        splits = None if self.splits is None else self.splits[rows]
        return ArrayCollection(self.pixels[rows], self.labels[rows], self.class_names,
                               self.name, splits, self.ids[rows])


class FileCollection(ImageCollection):
    """Images as files on disk, decoded (safely, capped at ``max_pixels``) on each load.

    ``skipped`` lists the (path, reason) of files that ``validate(skip_bad=True)`` dropped.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], labels: Indices,
                 class_names: Sequence[str], splits: SplitNames = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 skipped: Sequence[tuple[str, str]] = ()) -> None:
        self.paths = [os.fspath(p) for p in paths]
        self._set_labels(labels, class_names, splits)
        if len(self.paths) != len(self.labels):
            raise DataError(f"{len(self.labels)} labels for {len(self.paths)} image paths")
        self.max_pixels = max_pixels
        self.skipped = list(skipped)

    def source(self, i: int) -> str:
        return self.paths[i]

    def load(self, i: int) -> Image.Image:
        return decode_image(self.paths[i], max_pixels=self.max_pixels)

    def subset(self, indices: Indices) -> FileCollection:
        rows = as_indices(indices, len(self))
        splits = None if self.splits is None else self.splits[rows]
        return FileCollection([self.paths[r] for r in rows], self.labels[rows],
                              self.class_names, splits, self.max_pixels, self.skipped)

    def validate(self, skip_bad: bool = False,
                 progress: bool = True) -> tuple[FileCollection, list[tuple[str, str]]]:
        """Decode every file once, so that a broken image fails now and not mid-training.

        With ``skip_bad=False`` the first bad file raises its ``BadImageError``; with
        ``skip_bad=True`` bad files are dropped and returned as (path, reason) pairs.
        """
        good: list[int] = []
        bad: list[tuple[str, str]] = []
        for i in tqdm(range(len(self)), desc="checking images", unit="img",
                      disable=not progress, leave=False):
            try:
                self.load(i)
            except BadImageError as exc:
                if not skip_bad:
                    raise
                bad.append((self.paths[i], str(exc)))
            else:
                good.append(i)
        cleaned = self.subset(good)
        cleaned.skipped = self.skipped + bad
        return cleaned, bad


def check_trainable(collection: ImageCollection, min_per_class: int = 2) -> None:
    """Refuse a collection that triplet training cannot use: every class present needs a
    positive (>= ``min_per_class`` items) and there must be a negative (>= 2 classes)."""
    counts = collection.class_counts()
    present = np.flatnonzero(counts)
    if len(present) == 0:
        raise DataError("the collection is empty: triplet training needs images")
    if len(present) == 1:
        name = collection.class_names[present[0]]
        raise DataError(
            f"only one class {name!r}: triplet training needs at least 2 classes (no negatives)"
        )
    for c in present:
        if counts[c] < min_per_class:
            noun = "image" if counts[c] == 1 else "images"
            why = " (it has no positive)" if counts[c] == 1 else ""
            raise DataError(
                f"class {collection.class_names[c]!r} has {counts[c]} {noun}; triplet training "
                f"needs at least {min_per_class} per class{why}"
            )

"""Fast input for folders of photos: decode in worker processes, and decode only once.

A training epoch over image files spends most of its time decoding full-size JPEGs and
shrinking them to the model's input size. Two remedies, usable together:

- ``cache_resized`` decodes and resizes every image once (in DataLoader workers, with a
  progress bar) into a uint8 array file keyed by the items and the size, and returns an
  ``ArrayCollection`` over it: from then on batches are slices of one array, as for
  Fashion-MNIST, and later runs over the same files reuse the cache.
- ``PrefetchingLoader`` decodes the batches of an epoch in worker processes while the model
  trains on the previous ones.

Cached pixels are exactly those the file path produces (``to_tensor`` then back to uint8),
so a cached run sees the same inputs as an uncached one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from lookalike.data.dataset import ImageDataset
from lookalike.data.records import ArrayCollection, FileCollection, ImageCollection
from lookalike.data.transforms import to_tensor
from lookalike.errors import DataError
from lookalike.files import atomic_path, write_json

CACHE_ENV = "LOOKALIKE_CACHE"


def default_cache_dir() -> Path:
    """``$LOOKALIKE_CACHE``, else ``~/.cache/lookalike``: shared by runs over the same files."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lookalike")


def collection_digest(collection: ImageCollection) -> str:
    """Identifies a collection's items (sources, labels, file sizes and times, or pixels)."""
    digest = hashlib.sha256()
    files = isinstance(collection, FileCollection)
    for i in range(len(collection)):
        source = collection.source(i)
        digest.update(source.encode("utf-8", "surrogateescape") + b"\n")
        if files:
            try:
                stat = os.stat(source)
                digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
            except OSError:
                digest.update(b"missing")
    digest.update(np.ascontiguousarray(collection.labels).tobytes())
    if isinstance(collection, ArrayCollection):  # the same names could hold other pixels
        digest.update(hashlib.sha256(collection.pixels.tobytes()).digest())
    return digest.hexdigest()[:16]


class _ResizedPixels(Dataset):
    """Item i as uint8 (H, W) or (H, W, 3) at the cache size: what ``to_tensor`` gives."""

    def __init__(self, collection: ImageCollection, size: int, channels: int) -> None:
        self.collection, self.size, self.channels = collection, size, channels

    def __len__(self) -> int:
        return len(self.collection)

    def __getitem__(self, i: int) -> np.ndarray:
        image = to_tensor(self.collection.load(i), self.size, self.channels)  # (C, H, W)
        pixels = image.mul_(255.0).round_().to(torch.uint8)
        return pixels[0].numpy() if self.channels == 1 else pixels.permute(1, 2, 0).numpy()


def _stack(items: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack(items)


def reserve_blocks(path: Path) -> None:
    """Allocate every block of ``path`` (ENOSPC now, not SIGBUS when a mapped page is
    written); a no-op where the platform has no posix_fallocate."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def cache_resized(collection: ImageCollection, size: int, channels: int,
                  cache_dir: str | os.PathLike[str] | None = None, *, workers: int = 0,
                  progress: bool = True,
                  log: Callable[[str], None] = print) -> ArrayCollection:
    """``collection`` decoded and resized once to ``size`` x ``size``, as an in-memory-fast
    ``ArrayCollection`` backed by a cache file (reused when the same items come again)."""
    if isinstance(collection, ArrayCollection):
        return collection
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = f"{collection_digest(collection)}-{size}px-{channels}ch"
    pixels_path = folder / f"images-{key}.npy"
    if not pixels_path.is_file():
        shape = (len(collection), size, size) + ((3,) if channels == 3 else ())
        loader = DataLoader(_ResizedPixels(collection, size, channels), batch_size=64,
                            num_workers=workers, collate_fn=_stack)
        with atomic_path(pixels_path) as tmp:
            pixels = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            # Reserve the file's blocks now: a memory map on a full disk would otherwise
            # fail later with SIGBUS instead of an error that names the file.
            reserve_blocks(tmp)
            start = 0
            with tqdm(total=len(collection), unit="img", desc=f"caching at {size}px",
                      disable=not progress) as bar:
                for batch in loader:
                    pixels[start:start + len(batch)] = batch
                    start += len(batch)
                    bar.update(len(batch))
            pixels.flush()
            del pixels
        write_json(pixels_path.with_suffix(".json"), {
            "items": len(collection), "size": size, "channels": channels,
            "first_source": collection.source(0) if len(collection) else None})
        log(f"cached {len(collection)} images at {size}px in {pixels_path}")
    pixels = np.load(pixels_path, mmap_mode="c")  # copy-on-write: never changes the file
    if len(pixels) != len(collection):
        raise DataError(f"{pixels_path} holds {len(pixels)} images for {len(collection)} "
                        "items: delete it to rebuild the cache")
    ids = np.arange(len(collection))
    return ArrayCollection(pixels, collection.labels, collection.class_names,
                           name=f"cache:{key}", splits=collection.splits, ids=ids)


class PrefetchingLoader:
    """Loads the batches of one epoch in ``workers`` processes, in order, ahead of use.

    ``load(indices)`` returns the next batch and checks that it is the one asked for, so it
    can stand in for ``dataset.batch`` in the training loop.
    """

    def __init__(self, dataset: ImageDataset, batches: Sequence[Sequence[int]],
                 workers: int) -> None:
        self._batches = [list(map(int, b)) for b in batches]
        self._iterator = iter(DataLoader(dataset, batch_sampler=self._batches,
                                         num_workers=workers))
        self._position = 0

    def load(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        expected = self._batches[self._position]
        self._position += 1
        images, labels, index = next(self._iterator)
        if [int(i) for i in indices] != expected:
            raise RuntimeError("PrefetchingLoader: batches were asked for out of order")
        return images, labels, index

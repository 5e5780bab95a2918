"""The feature cache: a frozen prefix of the network run once per view of every image.

When the first part of the model never trains (``--train-blocks N``, or the backbone frozen
for every epoch), running it again every epoch only repeats the same arithmetic on freshly
augmented images. Instead, ``build_feature_cache`` runs it over V views of each training
image (view 0 the image as it is, views 1..V-1 drawn with the run's augmentation from a
seeded generator) and keeps the outputs, (V, N, *shape) in float16 or float32. Training
then feeds the tail of the model a batch of cached features, each item one of its V views
drawn from the run's generator (:meth:`FeatureCache.loader`), so head-only epochs cost a
linear layer instead of a backbone.

The cache lives in memory, or, with a folder (``--cache-images``) or when it would take
over ``MEMORY_LIMIT`` bytes, as a memory-mapped ``.npy`` under the image cache folder,
keyed by the items, the prefix's weights, the augmentation, V, the seed and the dtype, so
a later run over the same data and frozen weights reuses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lookalike.data import ImageDataset
from lookalike.data.pipeline import collection_digest, default_cache_dir, reserve_blocks
from lookalike.errors import DataError
from lookalike.files import atomic_path
from lookalike.training.batches import batch_loader
from lookalike.training.fit import Augmentation, BatchLoader
from lookalike.training.mixed_precision import autocast_context, compute_precision

MEMORY_LIMIT = 1 << 30  # bytes: a larger cache goes to a memory-mapped file
CHUNK = 256  # images per prefix pass; fixed, so the augmentation draws are too
DTYPES = {"float16": np.float16, "float32": np.float32}


@dataclass
class FeatureCache:
    """``features[v, i]``: the prefix's output for view v of training item i."""

    features: np.ndarray  # (V, N, *shape), float16 or float32, in memory or memory-mapped
    labels: np.ndarray  # (N,) the items' labels

    @property
    def views(self) -> int:
        return int(self.features.shape[0])

    def batch(self, indices: Sequence[int], generator: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, *shape) float32 of one random view per item, and labels (B,)."""
        index = np.asarray(indices, dtype=np.int64)
        if self.views == 1:  # nothing to choose: draw nothing
            view = np.zeros(len(index), dtype=np.int64)
        else:
            view = torch.randint(self.views, (len(index),), generator=generator).numpy()
        features = torch.from_numpy(np.ascontiguousarray(self.features[view, index]))
        return features.float(), torch.from_numpy(self.labels[index])

    def loader(self, generator: torch.Generator) -> BatchLoader:
        """A ``BatchLoader`` over the cache, drawing the views from ``generator`` (the run's
        augmentation stream, so a resumed epoch draws the same views)."""

        def load(batches: Sequence[Sequence[int]], skip: int
                 ) -> Iterator[tuple[Sequence[int], torch.Tensor, torch.Tensor]]:
            for indices in batches[skip:]:
                features, labels = self.batch(indices, generator)
                yield indices, features, labels

        return load


def describe(augment: Augmentation) -> str:
    """A stable text for an augmentation: a dataclass's repr, or a function's name."""
    name = getattr(augment, "__qualname__", None)
    return f"{augment.__module__}.{name}" if name else repr(augment)


def cache_key(prefix: nn.Module, dataset: ImageDataset, augment: Augmentation, views: int,
              seed: int, dtype: str, compute: str = "float32") -> str:
    """What the cached features depend on: the items, the prefix (layers and weights), the
    augmentation, the number of views, the seed, the storage type and the precision the
    prefix ran in (``--amp``: training/mixed_precision.py)."""
    digest = hashlib.sha256()
    digest.update(f"{collection_digest(dataset.collection)}|{dataset.size}|{dataset.channels}|"
                  f"{describe(augment)}|{views}|{seed}|{dtype}|{compute}|{prefix!r}".encode())
    for name, tensor in prefix.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:20]


def build_feature_cache(prefix: nn.Module, dataset: ImageDataset, augment: Augmentation, *,
                        views: int, generator: torch.Generator, seed: int,
                        device: torch.device, amp: bool = False, dtype: str = "float16",
                        folder: Path | None = None, workers: int = 0, progress: bool = True,
                        log: Callable[[str], None] = print) -> FeatureCache:
    """Run ``prefix`` (eval mode, no autograd) over ``views`` views of every item.

    Args:
        prefix: [0, 1] images (B, C, H, W) -> features (B, *shape), e.g. ``Embedder.split``.
        dataset: the training items, in index order.
        augment: the run's augmentation, for views 1..V-1 (view 0 is the image unchanged).
        generator: the stream those augmentations draw from, seeded by the caller.
        seed: the run's seed (part of the file's key).
        folder: keep the cache as a file here, reused by later runs (None: in memory, or
            under the image cache folder when it exceeds ``MEMORY_LIMIT``).
        workers: processes decoding image files (training/batches.py).
    """
    if len(dataset) == 0:
        raise DataError("the feature cache needs at least one training image")
    labels = np.asarray(dataset.collection.labels)
    compute = compute_precision(device, amp)
    path = (folder or default_cache_dir()) / (
        f"features-{cache_key(prefix, dataset, augment, views, seed, dtype, compute)}.npy")
    if path.is_file():
        features = np.load(path, mmap_mode="r")
        if features.shape[:2] != (views, len(dataset)):
            raise DataError(f"{path} holds {features.shape[:2]} views x items, not "
                            f"{(views, len(dataset))}: delete it to rebuild the cache")
        log(f"reusing the feature cache {path}")
        return FeatureCache(features, labels)
    chunks = [list(range(start, min(start + CHUNK, len(dataset))))
              for start in range(0, len(dataset), CHUNK)]
    loaded = batch_loader(dataset, workers)(chunks, 0)
    was_training = prefix.training
    prefix.eval()
    try:
        with torch.inference_mode(), tqdm(total=views * len(dataset), unit="img",
                                          desc="caching features", disable=not progress) as bar:

            def views_of(images: torch.Tensor) -> list[np.ndarray]:
                out = []
                for v in range(views):
                    view = images if v == 0 else augment(images, generator)
                    with autocast_context(device, amp):
                        features = prefix(view.to(device, non_blocking=True))  # (B, *shape)
                    out.append(features.float().cpu().numpy().astype(DTYPES[dtype]))
                    bar.update(len(images))
                return out

            indices, images, _ = next(loaded)
            first = views_of(images)
            shape = (views, len(dataset), *first[0].shape[1:])
            nbytes = int(np.prod(shape)) * np.dtype(DTYPES[dtype]).itemsize

            def fill(out: np.ndarray) -> None:
                for v, values in enumerate(first):
                    out[v, indices] = values
                for rest, images, _ in loaded:
                    for v, values in enumerate(views_of(images)):
                        out[v, rest] = values

            if folder is None and nbytes <= MEMORY_LIMIT:
                features = np.empty(shape, dtype=DTYPES[dtype])
                fill(features)
                return FeatureCache(features, labels)
            with atomic_path(path) as tmp:
                mapped = np.lib.format.open_memmap(tmp, mode="w+", dtype=DTYPES[dtype],
                                                   shape=shape)
                reserve_blocks(tmp)  # a full disk fails here, naming the file, not as SIGBUS
                fill(mapped)
                mapped.flush()
                del mapped
    finally:
        prefix.train(was_training)
    log(f"cached {views} views x {len(dataset)} images of features {shape[2:]} "
        f"({nbytes / 2**20:.0f} MiB) in {path}")
    return FeatureCache(np.load(path, mmap_mode="r"), labels)

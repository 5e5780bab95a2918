"""Load an epoch's batches: decoded by ``--workers`` processes ahead of use for image
files, sliced directly from in-memory (or cached) arrays."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from lookalike.data import ArrayCollection, ImageDataset
from lookalike.data.pipeline import PrefetchingLoader
from lookalike.training.fit import BatchLoader


def batch_loader(dataset: ImageDataset, workers: int) -> BatchLoader:
    """``load(batches, skip)``: (indices, images, labels) of ``batches[skip:]``, in order."""
    in_memory = workers == 0 or isinstance(dataset.collection, ArrayCollection)

    def load(batches: Sequence[Sequence[int]], skip: int
             ) -> Iterator[tuple[Sequence[int], torch.Tensor, torch.Tensor]]:
        remaining = batches[skip:]
        source = dataset.batch if in_memory else PrefetchingLoader(dataset, remaining,
                                                                   workers).load
        for indices in remaining:
            images, labels, _ = source(indices)
            yield indices, images, labels

    return load

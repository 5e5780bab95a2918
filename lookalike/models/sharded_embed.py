"""Embed a dataset with every process of a run taking its share (docs: lookalike/distributed.py).

The items are cut into the batches one process would embed, and the batches are dealt
round-robin to the ranks; the results are gathered and put back in order. Each batch is
computed exactly as one process computes it (a convolution's result can change in the last
bits with the batch it is in), so every rank ends with the bit-identical (N, D) array of a
single process, and pools mined from it are the same. Alone, it is plain :func:`embed`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from lookalike.distributed import current_group, gather
from lookalike.models.embedder import BatchDataset, embed


class Shard:
    """Items [start, stop) of a dataset, re-indexed from 0."""

    def __init__(self, dataset: BatchDataset, start: int, stop: int) -> None:
        self.dataset, self.start, self.stop = dataset, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def batch(self, indices: torch.Tensor | Sequence[int]
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shifted = torch.as_tensor(indices, dtype=torch.long) + self.start
        return self.dataset.batch(shifted)


def embed_everywhere(model: nn.Module, dataset: BatchDataset, batch_size: int = 256,
                     device: str | torch.device = "cpu", progress: bool = True,
                     on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """(N, D) float32 embeddings of every item, computed in shares by all ranks.

    ``on_batch`` is called with the items of every round of batches (all ranks' together),
    so a progress bar on one rank counts the whole run's work."""
    group = current_group()
    if not group.distributed:
        return embed(model, dataset, batch_size=batch_size, device=device, progress=progress,
                     on_batch=on_batch)
    starts = list(range(0, len(dataset), batch_size))
    mine = []
    for start in starts[group.rank::group.world_size]:
        mine.append(embed(model, Shard(dataset, start, min(start + batch_size, len(dataset))),
                          batch_size=batch_size, device=device, progress=False))
        if on_batch is not None:
            on_batch(min(batch_size * group.world_size, len(dataset) - start))
    dim = mine[0].shape[1] if mine else model_dim(model, dataset, device)
    local = np.concatenate(mine) if mine else np.zeros((0, dim), dtype=np.float32)
    everyone = gather(torch.from_numpy(local).to(device)).cpu().numpy()
    # everyone holds rank 0's batches, then rank 1's, ...: deal them back into item order
    out = np.empty((len(dataset), everyone.shape[1]), dtype=np.float32)
    offset = 0
    for rank in range(group.world_size):
        for start in starts[rank::group.world_size]:
            stop = min(start + batch_size, len(dataset))
            out[start:stop] = everyone[offset:offset + stop - start]
            offset += stop - start
    return out


def model_dim(model: nn.Module, dataset: BatchDataset, device: str | torch.device) -> int:
    """The embedding size, for a rank that got no batch to embed."""
    dim = getattr(model, "embedding_dim", None)
    if isinstance(dim, int):
        return dim
    return int(embed(model, Shard(dataset, 0, 1), device=device, progress=False).shape[1])

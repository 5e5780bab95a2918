"""Embed a dataset with every process of a run taking its share (docs: lookalike/distributed.py).

Each rank embeds a contiguous slice of the items and the slices are gathered in rank
order, so every rank ends with the same (N, D) array a single process computes (items are
embedded independently, in eval mode). Alone, it is plain :func:`embed`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from lookalike.distributed import current_group, gather, shard_bounds
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
                     device: str | torch.device = "cpu", progress: bool = True) -> np.ndarray:
    """(N, D) float32 embeddings of every item, computed in shares by all ranks."""
    group = current_group()
    if not group.distributed:
        return embed(model, dataset, batch_size=batch_size, device=device, progress=progress)
    start, stop = shard_bounds(len(dataset), group.rank, group.world_size)
    mine = embed(model, Shard(dataset, start, stop), batch_size=batch_size, device=device,
                 progress=progress and group.is_main)
    everyone = gather(torch.from_numpy(mine).to(device))
    return everyone.cpu().numpy()

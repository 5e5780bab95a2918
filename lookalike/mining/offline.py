"""Classic offline triplets: a fixed (anchor, positive, negative) list chosen before training.

``random_triplets`` draws the list over dataset indices; ``OfflineTripletSampler`` turns it
into batches laid out as consecutive triples [a1, p1, n1, a2, p2, n2, ...], and
``layout_triplets`` is the selector that reads that layout back inside the loss
(TripletLoss(selection="offline")).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from lookalike.errors import DataError
from lookalike.types import Triplets


def random_triplets(labels: np.ndarray | torch.Tensor, per_anchor: int, seed: int) -> Triplets:
    """For every anchor, per_anchor triplets with a random positive and a random negative.

    Positives are drawn uniformly from the anchor's class without the anchor itself,
    negatives uniformly from all items of other classes. Anchors alone in their class are
    skipped. Vectorised: items are sorted by label and draws are ranks within that order.
    Args:
        labels: (N,) integer labels of the dataset.  per_anchor: triplets per anchor.
        seed: seeds a private torch.Generator (same seed, same list).
    Returns:
        Triplets of dataset indices, each (T,) int64, grouped by anchor in index order.
    """
    labels = torch.as_tensor(labels).detach().cpu().long().reshape(-1)
    if per_anchor < 1:
        raise DataError(f"random_triplets: per_anchor must be >= 1, got {per_anchor}")
    _, class_of, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    if len(counts) < 2:
        raise DataError(f"random_triplets: need two classes for negatives, got {len(counts)}")
    order = torch.argsort(labels, stable=True)  # items grouped by class
    starts = torch.cumsum(counts, 0) - counts  # (C,) first rank of each class in `order`
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))  # rank of item i in `order`
    anchor = torch.nonzero(counts[class_of] > 1).squeeze(1).repeat_interleave(per_anchor)
    cls = class_of[anchor]
    start, count = starts[cls], counts[cls]
    gen = torch.Generator().manual_seed(seed)
    # Positive: a rank among the class's other count - 1 members, stepping over the anchor.
    u = torch.rand(len(anchor), generator=gen, dtype=torch.float64)
    r = torch.minimum((u * (count - 1)).long(), count - 2)
    own = rank[anchor] - start
    positive = order[start + r + (r >= own).long()]
    # Negative: a rank among the len(order) - count items outside the class block.
    u = torch.rand(len(anchor), generator=gen, dtype=torch.float64)
    r = torch.minimum((u * (len(order) - count)).long(), len(order) - count - 1)
    negative = order[r + (r >= start).long() * count]
    return Triplets(anchor, positive, negative)


def layout_triplets(dist: torch.Tensor, labels: torch.Tensor, margin: float = 0.0) -> Triplets:
    """Selector for offline batches: rows (0, 1, 2) are one triplet, (3, 4, 5) the next...

    Raises DataError when the batch size is not a multiple of 3 or a triple's labels do
    not form a triplet (a bad triplet list or a sampler that reshuffled the batch).
    Args:
        dist: (B, B) distances (only its size and device are used).  labels: (B,).
    """
    size = dist.shape[0]
    if size % 3:
        raise DataError(f"offline batch of {size} rows is not a list of (a, p, n) triples")
    anchor = torch.arange(0, size, 3, device=dist.device)
    triplets = Triplets(anchor, anchor + 1, anchor + 2)
    with torch.no_grad():
        bad = (labels[triplets.positive] != labels[anchor]) | (
            labels[triplets.negative] == labels[anchor]
        )
        if bool(bad.any()):
            row = int(anchor[bad][0])
            raise DataError(f"offline batch rows {row}-{row + 2} are not an (a, p, n) triplet")
    return triplets


class OfflineTripletSampler:
    """Batch sampler over a fixed triplet list: yields flat [a1, p1, n1, a2, p2, n2, ...].

    Use as ``DataLoader(dataset, batch_sampler=OfflineTripletSampler(...))`` with
    ``TripletLoss(selection="offline")``. Each epoch shuffles the triplets with a
    generator seeded by seed + epoch (call set_epoch before iterating).
    """

    def __init__(
        self,
        triplets: Triplets | Sequence[torch.Tensor],
        triplets_per_batch: int,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> None:
        if triplets_per_batch < 1:
            raise DataError(f"triplets_per_batch must be >= 1, got {triplets_per_batch}")
        self.table = torch.stack([torch.as_tensor(t).long().cpu() for t in triplets], dim=1)
        self.triplets_per_batch = triplets_per_batch
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reseed the next iteration with seed + epoch, so every epoch has its own order."""
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(len(self.table), self.triplets_per_batch)
        return full + (rest > 0 and not self.drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        table = self.table  # (T, 3)
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            table = table[torch.randperm(len(table), generator=gen)]
        for i in range(len(self)):
            block = table[i * self.triplets_per_batch : (i + 1) * self.triplets_per_batch]
            yield block.reshape(-1).tolist()

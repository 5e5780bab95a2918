"""Exact pool mining in O(N k) memory: ``mine_pools`` (docs/design.md 2.1, step 4).

The N x N distance matrix is never built. Items are sorted by class once, so each class is
one contiguous range and the own-class columns of an anchor block are one slice. Anchors
go in blocks; each block is scanned against column chunks of float32 scores and cut down
to a few candidates per anchor (``candidates``), and the candidates are re-ranked with
exact float64 distances (``rerank``). Hard negatives can instead come from ``faiss.knn``
per class (``faiss_negatives``). A test checks the result against the full-matrix oracle
in ``tests/oracles/pools.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from lookalike.errors import ConfigError, DataError
from lookalike.mining.candidates import scan_block
from lookalike.mining.faiss_negatives import faiss_negatives, use_faiss
from lookalike.mining.inputs import prepare_inputs
from lookalike.mining.pools import PoolConfig, Pools
from lookalike.mining.rerank import MARGIN, select_exact

BLOCK_ELEMENTS = 1 << 25  # float32 scores per anchor block x column chunk (128 MB)
BACKENDS = ("auto", "torch", "faiss")


@dataclass
class PoolSide:
    """One side of the pools being mined: per sorted position, its candidates and result.

    ``count`` and ``skip`` are indexed by class-sorted position; ``index`` and ``distance``
    are the (N, size) result in dataset order, -1 / nan where an anchor has too few.
    """

    farthest: bool  # positives rank the farthest first, negatives the nearest
    size: int  # items kept per anchor
    count: np.ndarray  # (N,) candidates of each sorted position
    skip: np.ndarray  # (N,) hardest candidates it skips
    index: np.ndarray  # (N, size) int64
    distance: np.ndarray  # (N, size) float32

    @classmethod
    def start(cls, config: PoolConfig, count: np.ndarray, positive: bool) -> PoolSide:
        size = config.pool_size(positive)
        return cls(positive, size, count, config.skips(count, positive),
                   np.full((len(count), size), -1, np.int64),
                   np.full((len(count), size), np.nan, np.float32))

    def width(self, rows: slice) -> int:
        """Float32 candidates the anchors of ``rows`` need: skip + size + MARGIN."""
        return int(self.skip[rows].max()) + self.size + MARGIN

    def store(self, ref: Tensor, order: Tensor, rows: slice, candidates: Tensor,
              metric: str) -> None:
        """Rank the candidates (B, K) of sorted positions ``rows`` exactly and keep them."""
        index, dist = select_exact(ref, order[rows], order[candidates],
                                   torch.from_numpy(self.count[rows]),
                                   torch.from_numpy(self.skip[rows]), self.size,
                                   self.farthest, metric)
        dataset_rows = order[rows].numpy()
        self.index[dataset_rows], self.distance[dataset_rows] = index.numpy(), dist.numpy()


def score_factors(sorted_rows: Tensor) -> tuple[Tensor, Tensor]:
    """float32 (N, D + 1) factors with ``left_i . right_j = |w_j|^2 - 2 w_i.w_j``.

    That is the squared distance |w_i - w_j|^2 less |w_i|^2, a constant per anchor row, so
    one matrix multiply ranks a row's columns.
    """
    squared_norm = sorted_rows.pow(2).sum(dim=1, keepdim=True).float()  # (N, 1)
    if not torch.isfinite(squared_norm).all():
        raise DataError("embeddings are too large for float32 distances; rescale them")
    rows32 = sorted_rows.float()
    left = torch.cat([rows32, torch.ones_like(squared_norm)], dim=1)
    right = torch.cat([-2.0 * rows32, squared_norm], dim=1)
    return left, right


def mine_pools(embeddings: np.ndarray | Tensor, labels: np.ndarray | Tensor,
               config: PoolConfig | None = None, *, block_size: int = 512,
               backend: Literal["auto", "torch", "faiss"] = "auto",
               progress: bool = False) -> Pools:
    """Hard-positive and hard-negative pools of every anchor, in O(N k) memory.

    Guarantee: the pools equal the full-matrix oracle (exact float64 ranking, ties to the
    smaller index) unless more than MARGIN items lie within float32 rounding (~1e-6
    relative) of a pool boundary; distances are exact float64 values stored as float32.
    Args:
        embeddings: (N, D) embeddings from the mining model.  labels: (N,) class labels.
        config: pool sizes, skip bands and distance (PoolConfig() when None).
        block_size: anchors per block; a block's scores use at most 128 MB.
        backend: "torch" (blocked scores), "faiss" (faiss.knn for the negatives of each
            class; for few large classes) or "auto" (see ``faiss_negatives.use_faiss``).
        progress: show a tqdm bar over anchor blocks.
    Returns:
        Pools, rows in dataset order.
    """
    config = config or PoolConfig()
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r} is not one of 'auto', 'torch', 'faiss'")
    if block_size < 1:
        raise ConfigError(f"block_size must be >= 1, got {block_size}")
    metric = config.distance
    ref, codes = prepare_inputs(embeddings, labels, metric)
    n = len(ref)
    order = torch.from_numpy(np.argsort(codes, kind="stable"))  # sorted position -> item
    class_size = np.bincount(codes)
    class_stop = np.cumsum(class_size)
    class_start = class_stop - class_size
    sorted_labels = codes[order.numpy()]
    own_class = class_size[sorted_labels]  # (N,) size of each sorted position's class
    positives = PoolSide.start(config, own_class - 1, positive=True)
    negatives = PoolSide.start(config, n - own_class, positive=False)
    centred = ref if metric == "cosine" else ref - ref.mean(dim=0)
    left, right = score_factors(centred[order])  # (N, D + 1) each, class-sorted
    labels_sorted = torch.from_numpy(sorted_labels)
    by_faiss = use_faiss(backend, len(class_size), negatives.width(slice(None)))
    chunk = max(1, BLOCK_ELEMENTS // block_size)
    buffer = torch.empty(min(block_size, n) * min(chunk, n))

    blocks: Iterable[int] = range(0, n, block_size)
    if progress:
        from tqdm import tqdm
        blocks = tqdm(blocks, desc="mining pools", unit="block")
    for row_start in blocks:
        row_stop = min(row_start + block_size, n)
        rows = slice(row_start, row_stop)
        positive_width = positives.width(rows) if positives.size else 0
        negative_width = negatives.width(rows) if negatives.size and not by_faiss else 0
        class_span = (int(class_start[sorted_labels[row_start]]),
                      int(class_stop[sorted_labels[row_stop - 1]]))
        positive_candidates, negative_candidates = scan_block(
            left, right, labels_sorted, class_span, (row_start, row_stop), positive_width,
            negative_width, buffer)
        if positives.size:
            positives.store(ref, order, rows, positive_candidates, metric)
        if negative_width:
            negatives.store(ref, order, rows, negative_candidates, metric)
    if by_faiss and negatives.size:
        widths = negatives.skip[class_start] + negatives.size + MARGIN
        vectors = left[:, :-1].contiguous().numpy()  # float32 class-sorted vectors
        for first, stop, candidates in faiss_negatives(vectors, class_start, class_stop, widths):
            for row_start in range(first, stop, block_size):
                row_stop = min(row_start + block_size, stop)
                negatives.store(ref, order, slice(row_start, row_stop),
                                candidates[row_start - first:row_stop - first], metric)
    return Pools(positives.index, positives.distance, negatives.index, negatives.distance,
                 config=config)

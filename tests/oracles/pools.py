"""The pool-mining oracle: the full (N, N) float64 distance matrix, each row sorted stably.

``lookalike.mining.pool_search.mine_pools`` must return exactly these pools (tests/mining);
this oracle is itself checked against a plain Python loop. Memory is 8 N^2 bytes plus a few
chunk x N (7.4 GB at N = 30 000): for tests and benchmark references, never for users.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lookalike.distances import pairwise_distance
from lookalike.mining.inputs import prepare_inputs
from lookalike.mining.pools import PoolConfig, Pools

INF = float("inf")


def mine_pools_naive(embeddings: np.ndarray | Tensor, labels: np.ndarray | Tensor,
                     config: PoolConfig | None = None, *, chunk: int = 512) -> Pools:
    """Every anchor's pools from its whole row of exact distances, ties to the smaller index.

    Args:
        embeddings: (N, D).  labels: (N,).  config: as for ``mine_pools``.
        chunk: rows computed and sorted at a time.
    """
    config = config or PoolConfig()
    ref, codes = prepare_inputs(embeddings, labels, config.distance)
    n = len(ref)
    dist = torch.empty(n, n, dtype=torch.float64)  # the full matrix, filled in row chunks
    for start in range(0, n, chunk):
        dist[start:start + chunk] = pairwise_distance(ref[start:start + chunk], ref,
                                                      config.distance)
    label, class_size = torch.from_numpy(codes), np.bincount(codes)[codes]
    candidates = {True: class_size - 1, False: n - class_size}
    out: dict[bool, tuple[np.ndarray, np.ndarray]] = {}
    for positive in (True, False):
        k = config.pool_size(positive)
        count = torch.from_numpy(candidates[positive])
        skip = torch.from_numpy(config.skips(candidates[positive], positive))
        index, values = np.full((n, k), -1, np.int64), np.full((n, k), np.nan, np.float32)
        for start in range(0, n, chunk) if k else ():
            rows = slice(start, min(start + chunk, n))
            same = label[rows, None] == label[None, :]  # (R, N)
            if positive:
                same.diagonal(offset=start).fill_(False)  # the anchor is not its own positive
            key = dist[rows].masked_fill(~same if positive else same,
                                         -INF if positive else INF)
            key, columns = key.sort(dim=1, descending=positive, stable=True)
            rank = skip[rows, None] + torch.arange(k)  # (R, k): the band after the skip
            valid = rank < count[rows, None]
            rank = rank.clamp_max(n - 1)
            index[rows] = torch.where(valid, columns.gather(1, rank), -1).numpy()
            values[rows] = torch.where(valid, key.gather(1, rank), torch.nan).float().numpy()
        out[positive] = index, values
    return Pools(*out[True], *out[False], config=config)

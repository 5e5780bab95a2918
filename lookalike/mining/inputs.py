"""Checked inputs for every whole-dataset computation of the mining package.

Pool mining (``pool_search``), the distance distribution (``distribution``) and the pool
analysis (``analysis``) all start from the same two arrays: (N, D) embeddings and (N,)
labels of any type. ``prepare_inputs`` checks them once, with one-line errors, and turns
them into float64 rows (unit rows under the cosine distance) and dense class codes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lookalike.errors import DataError


def prepare_inputs(embeddings: np.ndarray | Tensor, labels: np.ndarray | Tensor,
                   metric: str) -> tuple[Tensor, np.ndarray]:
    """Checked float64 embeddings (unit rows for cosine) and dense class codes (N,).

    Args:
        embeddings: (N, D) array or tensor; gradients and device are dropped.
        labels: (N,) class labels of any sortable type.
        metric: a ``lookalike.distances`` name; "cosine" normalises the rows.
    Returns:
        (N, D) float64 tensor on the CPU, and (N,) int64 codes 0..C-1 in sorted label order.
    Raises:
        DataError: for a non-(N, D) or non-finite array, labels of another length, or a
            zero row under the cosine distance.
    """
    x = torch.as_tensor(embeddings).detach().cpu().to(torch.float64)
    if x.ndim != 2 or len(x) == 0:
        raise DataError(f"embeddings must be (N, D) with N >= 1, got shape {tuple(x.shape)}")
    finite = torch.isfinite(x).all(dim=1)
    if not finite.all():
        raise DataError(f"embeddings row {int((~finite).nonzero()[0])} is not finite")
    y = np.asarray(labels.detach().cpu() if isinstance(labels, Tensor) else labels)
    if y.shape != (len(x),):
        raise DataError(f"labels must have shape ({len(x)},), got {y.shape}")
    codes = np.unique(y, return_inverse=True)[1].reshape(-1).astype(np.int64)
    if metric == "cosine":
        norm = x.norm(dim=1, keepdim=True)
        if (norm == 0).any():
            raise DataError(f"embeddings row {int((norm[:, 0] == 0).nonzero()[0])} is zero: "
                            "its cosine distance is undefined")
        x = x / norm
    return x, codes

"""Positive vs negative distance distributions: the picture behind hybrid mining.

The peaks and regions of docs/design.md 2.1 (step 3), measured. Over a seeded sample of
anchors, every anchor-positive and anchor-negative distance forms two histograms on shared
bins. A good embedding shows a low positive peak, a high negative peak and little overlap;
hard positives lie right of the positive peak, hard negatives left of the negative one.
Pure numbers: ``lookalike.viz`` draws them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lookalike.distances import pairwise_distance
from lookalike.mining.inputs import prepare_inputs

PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)
MAX_BLOCK = 1 << 24  # distances per anchor block (torch.nanquantile's input limit)


@dataclass
class DistanceSummary:
    """Histograms and per-anchor statistics of positive and negative distances.

    ``positive_counts`` / ``negative_counts`` (B,) share ``bin_edges`` (B + 1,); peaks are
    the centres of the smoothed histograms' modes; ``overlap`` is the area the two
    normalised histograms share (0 = separated, 1 = identical); ``hard_anchor_share`` is
    the share of anchors with a negative closer than their median positive. Per-anchor
    percentiles are (A, Q) arrays, nan for an anchor without positives.
    """

    metric: str
    anchors: np.ndarray
    bin_edges: np.ndarray
    positive_counts: np.ndarray
    negative_counts: np.ndarray
    positive_peak: float
    negative_peak: float
    overlap: float
    hard_anchor_share: float
    positive_mean: float
    negative_mean: float
    percentiles: tuple[float, ...]
    positive_percentiles: np.ndarray
    negative_percentiles: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: arrays become lists, nan becomes None."""
        def clean(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return [clean(v) for v in value.tolist()]
            if isinstance(value, (list, tuple)):
                return [clean(v) for v in value]
            if isinstance(value, float) and np.isnan(value):
                return None
            return value
        return {name: clean(getattr(self, name)) for name in self.__dataclass_fields__}


def _peak(counts: np.ndarray, edges: np.ndarray, width: float = 2.0) -> float:
    """Centre of the histogram's highest bin after Gaussian smoothing (sigma in bins)."""
    if counts.sum() == 0:
        return float("nan")
    offsets = np.arange(-int(3 * width), int(3 * width) + 1)
    kernel = np.exp(-0.5 * (offsets / width) ** 2)
    smooth = np.convolve(counts.astype(np.float64), kernel / kernel.sum(), mode="same")
    mode = int(np.argmax(smooth))
    return float((edges[mode] + edges[mode + 1]) / 2)


def _blocks(x: Tensor, y: Tensor, anchors: np.ndarray, metric: str,
            rows: int) -> Iterator[tuple[slice, Tensor, Tensor]]:
    """Per anchor block: its slice of ``anchors``, distances (R, N) and side codes (R, N)
    (0 positive, 1 negative, 2 the anchor itself)."""
    for start in range(0, len(anchors), rows):
        idx = torch.from_numpy(anchors[start:start + rows])
        side = (y[idx, None] != y[None, :]).to(torch.uint8)  # (R, N)
        side[torch.arange(len(idx)), idx] = 2
        yield slice(start, start + rows), pairwise_distance(x[idx], x, metric), side


def _sorted_by_side(dist: Tensor, side: Tensor) -> Tensor:
    """Each row's distances sorted within its sides: positives, then negatives, then self.

    Non-negative float32 values order like their int32 bit patterns, so a single int64 sort
    with the side code in the high bits sorts every side of every row at once.
    """
    bits = (dist.clamp_min(0.0) + 0.0).view(torch.int32).long()  # + 0.0 turns -0.0 into 0.0
    keys = (side.long() << 32 | bits).sort(dim=1).values
    return (keys & 0xFFFFFFFF).to(torch.int32).view(torch.float32)


def _side_stats(values: Tensor, first: Tensor, count: Tensor,
                q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Quantiles (R, Q) (linear interpolation, as numpy's default), min and max (R,) of the
    sorted segments ``values[r, first[r]:first[r] + count[r]]``; nan for an empty segment."""
    at = q[None, :] * (count[:, None] - 1).clamp_min(0)  # (R, Q) positions in the segment
    below = at.floor()
    low = values.gather(1, first[:, None] + below.long())
    high = values.gather(1, first[:, None] + at.ceil().long())
    quantiles = low + (at - below) * (high - low)
    ends = torch.stack([first, first + (count - 1).clamp_min(0)], dim=1)
    extremes = values.gather(1, ends.clamp_max(values.shape[1] - 1))
    empty = count == 0
    smallest, largest = extremes.masked_fill(empty[:, None], torch.nan).unbind(1)
    return quantiles.masked_fill(empty[:, None], torch.nan), smallest, largest


def distance_distribution(embeddings: np.ndarray | Tensor, labels: np.ndarray | Tensor, *,
                          sample_anchors: int = 2000, seed: int = 0, metric: str = "euclidean",
                          bins: int = 100, block_size: int = 256) -> DistanceSummary:
    """Exact positive / negative distance statistics over a seeded sample of anchors.

    Args:
        embeddings: (N, D).  labels: (N,).
        sample_anchors: anchors drawn without replacement (all N when fewer).
        seed: seeds the anchor draw (numpy default_rng).  metric: a lookalike.distances name.
        bins: histogram bins over [smallest, largest] distance seen.
        block_size: anchors per block (fewer when N is large).
    """
    ref, codes = prepare_inputs(embeddings, labels, metric)
    x, y = ref.float(), torch.from_numpy(codes)
    n = len(x)
    anchors = np.sort(np.random.default_rng(seed).choice(n, min(sample_anchors, n), False))
    rows = max(1, min(block_size, MAX_BLOCK // n))
    q = torch.tensor(PERCENTILES) / 100
    sums = np.zeros(2)
    stats: tuple[list[tuple[Tensor, Tensor, Tensor]], ...] = ([], [])  # positive, negative
    same = torch.from_numpy(np.bincount(codes)[codes[anchors]])  # (A,) class sizes
    for block, dist, side in _blocks(x, y, anchors, metric, rows):
        values = _sorted_by_side(dist, side)
        n_pos = same[block] - 1
        for code, first, count in ((0, torch.zeros_like(n_pos), n_pos), (1, n_pos, n - 1 - n_pos)):
            stats[code].append(_side_stats(values, first, count, q))
            sums[code] += float(dist.where(side == code, 0.0).sum(dtype=torch.float64))
    (pos_q, pos_min, pos_max), (neg_q, neg_min, neg_max) = (
        [torch.cat(part) for part in zip(*side_stats, strict=True)] for side_stats in stats)
    lo = float(torch.cat([pos_min, neg_min]).nan_to_num(torch.inf).min())
    hi = float(torch.cat([pos_max, neg_max]).nan_to_num(-torch.inf).max())
    lo, hi = (lo, hi if hi > lo else lo + 1.0) if np.isfinite(lo) else (0.0, 1.0)
    edges = np.linspace(lo, hi, bins + 1)
    counts = np.zeros(3 * bins, np.int64)
    for _, dist, side in _blocks(x, y, anchors, metric, rows):
        bucket = ((dist - lo) * (bins / (hi - lo))).long().clamp_(0, bins - 1)
        counts += torch.bincount((bucket + side.long() * bins).flatten(), minlength=3 * bins
                                 ).numpy()
    pos_counts, neg_counts = counts[:bins], counts[bins:2 * bins]
    share = [c / max(c.sum(), 1) for c in (pos_counts, neg_counts)]
    median = pos_q[:, PERCENTILES.index(50.0)]
    hard = (neg_min < median)[~median.isnan()]
    return DistanceSummary(
        metric=metric, anchors=anchors, bin_edges=edges,
        positive_counts=pos_counts, negative_counts=neg_counts,
        positive_peak=_peak(pos_counts, edges), negative_peak=_peak(neg_counts, edges),
        overlap=float(np.minimum(*share).sum()),
        hard_anchor_share=float(hard.double().mean()),  # nan when no anchor has a positive
        positive_mean=sums[0] / pos_counts.sum() if pos_counts.sum() else float("nan"),
        negative_mean=sums[1] / neg_counts.sum() if neg_counts.sum() else float("nan"),
        percentiles=PERCENTILES,
        positive_percentiles=pos_q.numpy(), negative_percentiles=neg_q.numpy())

"""The float32 half of pool mining: a few candidates per anchor from one blocked scan.

For one block of anchors, scores against every column chunk of the class-sorted items come
from one matrix multiply each; a top-k keeps the best few per anchor (positives only inside
the anchor's class slice, negatives everywhere else), and the chunks' survivors are merged
best first. ``rerank`` then ranks these candidates exactly, in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

GROUP = 32  # columns per group in the group-extreme prefilter of a top-k
INF = float("inf")


def extreme_columns(scores: Tensor, count: int, largest: bool) -> tuple[Tensor, Tensor]:
    """The ``count`` largest / smallest entries of each row of scores (B, C), unsorted.

    The extreme entries lie in the ``count`` groups (of ``group`` adjacent columns) whose
    own extreme is most extreme, so one amin/amax pass shrinks the top-k to count x group
    columns; worth it only when that is a small share of the row (top-k costs much per row).
    Returns:
        values (B, count) and their columns (B, count) in ``scores``.
    """
    columns = scores.shape[1]
    count, group = min(count, columns), GROUP
    while group >= 4 and 8 * count * group > columns:
        group //= 2
    if group < 4:
        return scores.topk(count, dim=1, largest=largest, sorted=False)
    grouped_width = columns - columns % group
    grouped = scores[:, :grouped_width].unflatten(1, (grouped_width // group, group))
    group_extreme = grouped.amax(2) if largest else grouped.amin(2)  # (B, C / group)
    best_groups = group_extreme.topk(count, dim=1, largest=largest, sorted=False).indices
    in_best_groups = grouped.gather(1, best_groups[:, :, None].expand(-1, -1, group))
    shortlist = torch.cat([in_best_groups.flatten(1), scores[:, grouped_width:]], dim=1)
    values, at = shortlist.topk(count, dim=1, largest=largest, sorted=False)
    # Map shortlist positions back to columns: best groups first, then the ungrouped tail.
    in_group = best_groups.gather(1, (at // group).clamp_max(count - 1)) * group + at % group
    return values, torch.where(at < count * group, in_group, at - count * group + grouped_width)


@dataclass
class ChunkCandidates:
    """One side's candidates of an anchor block, collected over the column chunks."""

    scores: list[Tensor] = field(default_factory=list)  # (B, <= width) per chunk
    columns: list[Tensor] = field(default_factory=list)  # their class-sorted positions

    def add(self, scores: Tensor, columns: Tensor) -> None:
        self.scores.append(scores)
        self.columns.append(columns)

    def best_first(self, width: int, largest: bool, rows: int) -> Tensor:
        """Class-sorted positions (B, <= width) of the best candidates over all chunks."""
        if not self.scores:
            return torch.empty(rows, 0, dtype=torch.long)
        merged = torch.cat(self.scores, dim=1)
        at = merged.topk(min(width, merged.shape[1]), dim=1, largest=largest,
                         sorted=True).indices
        return torch.cat(self.columns, dim=1).gather(1, at)


def scan_block(left: Tensor, right: Tensor, labels: Tensor, class_span: tuple[int, int],
               rows: tuple[int, int], positive_width: int, negative_width: int,
               buffer: Tensor) -> tuple[Tensor, Tensor]:
    """Approximate candidates of one anchor block, as sorted positions ranked best first.

    Scores ``left_i . right_j = |w_j|^2 - 2 w_i.w_j`` are the squared distance less a
    per-row constant, one BLAS call per chunk into ``buffer``. Negatives scan every column
    with the own-class slice at +inf; positives scan only ``class_span``, the own-class
    columns of the block, with other classes and the anchor itself at -inf.
    Args:
        left, right: (N, D + 1) float32 class-sorted factors of the scores.
        labels: (N,) class codes in sorted order.
        class_span: [first, stop) columns of the classes of the block's anchors.
        rows: [first, stop) sorted positions of the block's anchors.
        positive_width, negative_width: candidates to keep per anchor (0: skip that side).
        buffer: float32 scratch; its length sets the column chunk.
    Returns:
        positive (B, <= positive_width) and negative (B, <= negative_width) candidates.
    """
    row_start, row_stop = rows
    span_start, span_stop = class_span
    block = row_stop - row_start
    block_labels, chunk = labels[row_start:row_stop], len(buffer) // block
    if negative_width:
        scan_start, scan_stop = 0, len(right)
    else:
        scan_start, scan_stop = span_start, span_stop if positive_width else span_start
    positives, negatives = ChunkCandidates(), ChunkCandidates()
    for col_start in range(scan_start, scan_stop, chunk):
        col_stop = min(col_start + chunk, scan_stop)
        scores = buffer[:block * (col_stop - col_start)].view(block, col_stop - col_start)
        torch.mm(left[row_start:row_stop], right[col_start:col_stop].T, out=scores)  # (B, C)
        own_start, own_stop = max(col_start, span_start), min(col_stop, span_stop)
        if own_start < own_stop:
            own = scores[:, own_start - col_start:own_stop - col_start]  # view into scores
            same = block_labels[:, None] == labels[None, own_start:own_stop]  # (B, S)
            if positive_width:
                positive = same.clone()
                positive.diagonal(offset=row_start - own_start).fill_(False)  # the anchor
                values, columns = extreme_columns(own.masked_fill(~positive, -INF),
                                                  positive_width, True)
                positives.add(values, columns + own_start)
            if negative_width:
                own.masked_fill_(same, INF)
        if negative_width:
            values, columns = extreme_columns(scores, negative_width, False)
            negatives.add(values, columns + col_start)
    return (positives.best_first(positive_width, True, block),
            negatives.best_first(negative_width, False, block))

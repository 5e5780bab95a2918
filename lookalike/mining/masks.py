"""Label masks for in-batch mining, built by broadcasting, and the (B, B) tables built on them.

Every selector and the batch-all loss start from the same two (B, B) masks: which pairs
share a label (positives, never the item itself) and which do not (negatives). Triplets
form an (anchor, positive, negative) cube that is never materialised whole: selectors
work on each anchor's positives as a padded table (P x K batches have few), on its
negatives sorted by distance (binary searches replace scans over the cube), or on blocks
of anchors whose size is bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

# Elements of one (anchors, positives, negatives) block: 16M floats = 64 MB per temporary.
DEFAULT_CHUNK_ELEMENTS = 1 << 24


def same_label_mask(labels: torch.Tensor) -> torch.Tensor:
    """Which pairs are positives: same label, excluding each item with itself.

    Args:
        labels: (B,) integer labels.
    Returns:
        (B, B) bool, True where labels[i] == labels[j] and i != j.
    """
    same = labels[:, None] == labels[None, :]
    return same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)


def other_label_mask(labels: torch.Tensor) -> torch.Tensor:
    """Which pairs are negatives: different labels.

    Args:
        labels: (B,) integer labels.
    Returns:
        (B, B) bool, True where labels[i] != labels[j].
    """
    return labels[:, None] != labels[None, :]


def positive_table(same: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each anchor's positives as a padded index table, so triplet blocks stay (c, P, B).

    Args:
        same: (B, B) bool positive mask (see same_label_mask).
    Returns:
        index: (B, P) int64, row a lists a's positives in ascending order, then 0s;
        valid: (B, P) bool, False on padding. P is the largest number of positives of any
        anchor (0 when no anchor has one).
    """
    counts = same.sum(dim=1)  # (B,)
    width = int(counts.max()) if len(counts) else 0
    rows, cols = same.nonzero(as_tuple=True)  # row-major: columns ascend within a row
    slot = torch.arange(len(rows), device=same.device) - (torch.cumsum(counts, 0) - counts)[rows]
    index = torch.zeros(len(counts), width, dtype=torch.long, device=same.device)
    index[rows, slot] = cols
    valid = torch.arange(width, device=same.device)[None, :] < counts[:, None]
    return index, valid


def sorted_negatives(dist: torch.Tensor, other: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each anchor's negatives by increasing distance, for binary searches along a row.

    The sort is stable, so equal distances keep index order (ties resolve to the lowest
    index); non-negatives are +inf and sort last (use other.sum(1) as each row's length).
    Args:
        dist: (B, B) distances.  other: (B, B) bool negative mask.
    Returns:
        values (B, B) ascending and order (B, B), the column index of each value.
    """
    values, order = dist.masked_fill(~other, torch.inf).sort(dim=1, stable=True)
    return values, order


def count_prefix(
    rows: torch.Tensor, limit: torch.Tensor, holds: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """How many leading entries of each sorted row satisfy a monotone predicate.

    A vectorised binary search that evaluates the caller's exact float predicate (true,
    then false along the row), so borderline and tied values are classified exactly as
    an elementwise evaluation over the whole cube would classify them.
    Args:
        rows: (B, M) rows sorted so that holds is true on a prefix.
        limit: (B, Q) int64, how many entries of row b the query (b, q) may count.
        holds: maps gathered values (B, Q) to bool (B, Q); queries broadcast inside it.
    Returns:
        (B, Q) int64 counts in [0, limit].
    """
    lo, hi = torch.zeros_like(limit), limit.clone()
    width = rows.shape[1]
    for _ in range(width.bit_length() if width else 0):
        mid = (lo + hi) // 2
        ok = holds(rows.gather(1, mid.clamp_max(width - 1)))
        active = lo < hi
        lo = torch.where(active & ok, mid + 1, lo)
        hi = torch.where(active & ~ok, mid, hi)
    return lo


def anchor_blocks(
    num_anchors: int, elements_per_anchor: int, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
) -> Iterator[slice]:
    """Slices of anchors whose blocks hold at most chunk_elements (at least one anchor each).

    Args:
        num_anchors: B.  elements_per_anchor: size of one anchor's slice of the block
        (e.g. P * B).  chunk_elements: the memory bound, in elements.
    """
    step = max(1, chunk_elements // max(1, elements_per_anchor))
    for start in range(0, num_anchors, step):
        yield slice(start, min(start + step, num_anchors))

"""Contrastive pair selection: every positive pair of a batch and negatives in a set ratio.

Siamese training (docs/design.md 2.2) learns from pairs (a, b, same?). In a batch of B
items a P x K batch holds P * K(K-1)/2 positive pairs but far more negatives, (B^2 - P*K^2)/2, so
the negatives are subsampled to ``positives * neg / pos`` for a ratio ``pos:neg``.

Policy (deliberate):

- Every positive pair i < j is kept, never subsampled: positives are the scarce kind, and
  the ratio is met by choosing how many negatives to take.
- Negatives: ``n_pos * neg // pos`` of them, capped by how many distinct negative pairs
  i < j exist (then the batch holds fewer negatives than the ratio asks for).
- No positive pair (all singletons) means no negatives either (the ratio of 0 is 0), and
  one class only means no negatives: the result holds what exists, possibly nothing.
- Negatives are drawn uniformly without replacement from ``generator`` (None: torch's
  global CPU generator, which the trainer seeds and checkpoints), or with ``hard=True``
  are the negative pairs with the smallest distance, ties to the lowest pair index.

Pairs are unordered (i < j, so never a self pair and never both (i, j) and (j, i));
positives come first, in row-major order, then the negatives in the order drawn.
"""

from __future__ import annotations

import torch

from lookalike.errors import ConfigError, DataError
from lookalike.types import Pairs


def check_ratio(ratio: tuple[int, int]) -> tuple[int, int]:
    """(pos, neg) as ints >= 1, or ConfigError."""
    try:
        pos, neg = (int(part) for part in ratio)
    except (TypeError, ValueError):
        raise ConfigError(f"pair ratio must be (positives, negatives), got {ratio!r}") from None
    if pos < 1 or neg < 1:
        raise ConfigError(f"pair ratio needs at least one of each, got {pos}:{neg}")
    return pos, neg


@torch.no_grad()
def select_pairs(
    labels: torch.Tensor,
    ratio: tuple[int, int] = (1, 3),
    generator: torch.Generator | None = None,
    distances: torch.Tensor | None = None,
    hard: bool = False,
) -> Pairs:
    """All positive pairs of a batch and negative pairs in the ratio ``pos:neg``.

    Args:
        labels: (B,) integer labels.
        ratio: (pos, neg): ``neg / pos`` negatives per positive pair, e.g. (1, 3).
        generator: source of the random negatives (its device draws them).
        distances: (B, B) distance matrix, smaller is closer; needed when hard.
        hard: take the closest negative pairs instead of random ones.
    Returns:
        Pairs(first (P,), second (P,), same (P,) bool) on labels' device, first < second.
    """
    pos, neg = check_ratio(ratio)
    if labels.ndim != 1:
        raise DataError(f"select_pairs needs labels (B,), got {tuple(labels.shape)}")
    n = len(labels)
    if hard and distances is None:
        raise ConfigError("hard negative pairs need the batch's distance matrix")
    if distances is not None and distances.shape != (n, n):
        raise DataError(f"distances must be ({n}, {n}), got {tuple(distances.shape)}")
    first, second = torch.triu_indices(n, n, offset=1, device=labels.device)  # (n(n-1)/2,)
    same = labels[first] == labels[second]
    positive = same.nonzero().squeeze(1)  # (n_pos,) indices into the i < j list
    negative = (~same).nonzero().squeeze(1)  # (n_neg,)
    wanted = min(len(positive) * neg // pos, len(negative))
    if hard:
        assert distances is not None
        closeness = distances[first[negative], second[negative]]  # (n_neg,)
        order = torch.sort(closeness, stable=True).indices
    else:
        device = generator.device if generator is not None else torch.device("cpu")
        order = torch.randperm(len(negative), generator=generator, device=device)
    chosen = negative[order[:wanted].to(labels.device)]  # (wanted,)
    keep = torch.cat([positive, chosen])
    return Pairs(first[keep], second[keep], same[keep])

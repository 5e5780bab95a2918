"""ContrastiveLoss: siamese training on pairs (a, b, same?) with a positive:negative ratio.

For a pair at distance d with y = 1 when both items share a label (docs/design.md 2.2)::

    L = y * max(d - m_pos, 0) + (1 - y) * max(m_neg - d, 0)            (PML's form)
    L = y * max(d - m_pos, 0)^2 + (1 - y) * max(m_neg - d, 0)^2        (squared=True)

With m_pos = 0 the squared form is ``y·d² + (1−y)·max(m − d, 0)²`` of Hadsell, Chopra and
LeCun, "Dimensionality Reduction by Learning an Invariant Mapping" (CVPR 2006): positives
are pulled together, negatives pushed until they are m apart and then left alone.

Reduction, as PML's ContrastiveLoss (AvgNonZeroReducer): the mean over the positive pairs
with loss > 0 plus the mean over the negative pairs with loss > 0, so the scarce positives
are not outvoted by the negatives and easy pairs do not dilute the gradient. With the same
pairs (``indices_tuple=(a1, p, a2, n)``) and ``LpDistance(normalize_embeddings=False)``
the value and gradient equal PML's ``ContrastiveLoss(pos_margin, neg_margin)``.

Pairs come from lookalike.mining.pairs.select_pairs: every positive pair of the batch and
random (or the hardest) negatives in the ratio. Recommended sampler: P classes x K items
(PKSampler, K >= 2), so every batch has positive pairs.

Example::

    loss_fn = ContrastiveLoss(neg_margin=0.5, ratio=(1, 3))
    out = loss_fn(model(images), labels)   # LossOutput(loss, stats)
    out.loss.backward(); print(out.stats.num_triplets, "pairs")
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lookalike.distances import METRICS
from lookalike.errors import ConfigError
from lookalike.losses.batch import batch_distances
from lookalike.losses.reduction import mean_over_positive
from lookalike.losses.stats import pair_stats
from lookalike.mining.pairs import check_ratio, select_pairs
from lookalike.types import LossOutput


def pair_losses(
    d: Tensor, same: Tensor, pos_margin: float, neg_margin: float, squared: bool = False
) -> Tensor:
    """Per-pair contrastive losses (P,) from pair distances d (P,) and same (P,) bool."""
    losses = torch.where(same, torch.relu(d - pos_margin), torch.relu(neg_margin - d))
    return losses.square() if squared else losses


class ContrastiveLoss(nn.Module):
    """Contrastive (siamese) loss over in-batch pairs; returns LossOutput.

    Args:
        pos_margin: positive pairs closer than this cost nothing (m_pos >= 0).
        neg_margin: negative pairs farther than this cost nothing (m_neg > 0).
        distance: "euclidean", "squared_euclidean" or "cosine" (lookalike.distances).
        ratio: (pos, neg) positive to negative pairs per batch, e.g. (1, 3).
        squared: square each hinge (Hadsell et al. 2006) instead of PML's plain hinge.
        hard_negatives: the closest negative pairs of the batch instead of random ones.
        generator: source of the random negatives; None uses torch's global CPU
            generator, which the trainer seeds and saves with its checkpoints.
    """

    def __init__(
        self,
        pos_margin: float = 0.0,
        neg_margin: float = 0.5,
        distance: str = "euclidean",
        ratio: tuple[int, int] = (1, 3),
        squared: bool = False,
        hard_negatives: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if distance not in METRICS:
            raise ConfigError(f"unknown distance {distance!r}; choose one of {', '.join(METRICS)}")
        if not pos_margin >= 0:
            raise ConfigError(f"contrastive pos_margin must be >= 0, got {pos_margin}")
        if not neg_margin > 0:
            raise ConfigError(f"contrastive neg_margin must be > 0, got {neg_margin}")
        self.pos_margin, self.neg_margin = float(pos_margin), float(neg_margin)
        self.distance, self.ratio = distance, check_ratio(ratio)
        self.squared, self.hard_negatives, self.generator = squared, hard_negatives, generator

    def extra_repr(self) -> str:
        return (
            f"pos_margin={self.pos_margin}, neg_margin={self.neg_margin}, "
            f"distance={self.distance!r}, ratio={self.ratio[0]}:{self.ratio[1]}, "
            f"squared={self.squared}, hard_negatives={self.hard_negatives}"
        )

    def forward(self, embeddings: Tensor, labels: Tensor) -> LossOutput:
        """Loss and stats of one batch.

        Args:
            embeddings: (B, D) float.  labels: (B,) integer class labels.
        Returns:
            LossOutput(loss: scalar tensor, stats: LossStats with pairs as "triplets").
        """
        labels, dist = batch_distances("ContrastiveLoss", embeddings, labels, self.distance)
        pairs = select_pairs(labels, self.ratio, self.generator, dist.detach(),
                             self.hard_negatives)
        d = dist[pairs.first, pairs.second]  # (P,)
        losses = pair_losses(d, pairs.same, self.pos_margin, self.neg_margin, self.squared)
        loss = mean_over_positive(losses[pairs.same]) + mean_over_positive(losses[~pairs.same])
        return LossOutput(loss, pair_stats(d, pairs.same, losses))

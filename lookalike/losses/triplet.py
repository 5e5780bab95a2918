"""TripletLoss: a distance, a triplet selection, a hinge or soft-plus, and a reducer.

For anchor a, positive p (same label) and negative n (other label):
``L = max(d(a, p) - d(a, n) + m, 0)`` (Schroff et al. 2015, FaceNet), or with soft=True
``ln(1 + exp(d(a, p) - d(a, n)))`` (Hermans et al. 2017). Selections:

- "batch-all": every valid triplet of the batch, in O(B^2) memory (batch_all.py);
- "batch-hard": per anchor, the farthest positive and the nearest negative;
- "semi-hard": per anchor-positive pair, the nearest negative farther than the positive;
- "semi-hard-all": every triplet with d(a, p) < d(a, n) <= d(a, p) + m;
- "offline": the batch is a list of (a, p, n) triples, rows (0, 1, 2), (3, 4, 5), ...
  as OfflineTripletSampler yields them.

Recommended sampler: P classes x K items per batch (K >= 2), so every anchor has positives.

Example::

    loss_fn = TripletLoss("batch-hard", distance="euclidean", margin=0.2)
    out = loss_fn(model(images), labels)   # LossOutput(loss, stats)
    out.loss.backward(); print(out.stats.fraction_positive)
"""

from __future__ import annotations

from torch import Tensor, nn

from lookalike.distances import METRICS
from lookalike.errors import ConfigError
from lookalike.losses.batch import batch_distances
from lookalike.losses.batch_all import batch_all_loss
from lookalike.losses.hinge import triplet_loss, violation
from lookalike.losses.reduction import REDUCERS
from lookalike.losses.stats import triplet_stats
from lookalike.mining.masks import DEFAULT_CHUNK_ELEMENTS
from lookalike.mining.offline import layout_triplets
from lookalike.mining.online import SELECTORS, Selector, online_selections
from lookalike.types import LossOutput


def triplet_selections() -> tuple[str, ...]:
    """What TripletLoss accepts: the online selections and "offline" (a laid-out batch)."""
    return (*online_selections(), "offline")


def _check_choice(kind: str, value: str, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {kind} {value!r}; choose one of {', '.join(choices)}")


class TripletLoss(nn.Module):
    """Triplet margin loss over in-batch (or offline) triplets; returns LossOutput.

    Args:
        selection: one of :func:`triplet_selections` (see the module docstring); the
            selectors come from the ``lookalike.mining.online.SELECTORS`` registry.
        distance: "euclidean", "squared_euclidean" or "cosine" (lookalike.distances).
        margin: hinge margin m >= 0 (also the band of "semi-hard-all"); unused by the
            soft-plus itself.
        soft: soft-plus ln(1 + exp(d_ap - d_an)) instead of the hinge.
        reduction: "positive" averages over triplets with loss > 0 (PML's
            AvgNonZeroReducer), "mean" over all selected triplets.
        chunk_elements: memory bound of one anchor block for the soft batch-all.
    """

    def __init__(
        self,
        selection: str = "batch-hard",
        distance: str = "euclidean",
        margin: float = 0.2,
        soft: bool = False,
        reduction: str = "positive",
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    ) -> None:
        super().__init__()
        _check_choice("triplet selection", selection, triplet_selections())
        _check_choice("distance", distance, METRICS)
        _check_choice("reduction", reduction, list(REDUCERS))
        if not margin >= 0:
            raise ConfigError(f"triplet margin must be >= 0, got {margin}")
        if chunk_elements < 1:
            raise ConfigError(f"chunk_elements must be >= 1, got {chunk_elements}")
        self.selection, self.distance, self.margin = selection, distance, float(margin)
        self.soft, self.reduction, self.chunk_elements = soft, reduction, chunk_elements

    def extra_repr(self) -> str:
        return (
            f"selection={self.selection!r}, distance={self.distance!r}, margin={self.margin}, "
            f"soft={self.soft}, reduction={self.reduction!r}"
        )

    def selector(self) -> Selector:
        """The triplet selector for this loss's selection (batch-all has none: it sums)."""
        if self.selection == "offline":
            return layout_triplets
        if self.selection == "batch-all":
            raise ConfigError("selection 'batch-all' lists no triplets; it sums them all")
        return SELECTORS.get(self.selection)

    def forward(self, embeddings: Tensor, labels: Tensor) -> LossOutput:
        """Loss and stats of one batch.

        Args:
            embeddings: (B, D) float.  labels: (B,) integer class labels.
        Returns:
            LossOutput(loss: scalar tensor, stats: LossStats).
        """
        labels, dist = batch_distances("TripletLoss", embeddings, labels, self.distance)  # (B, B)
        if self.selection == "batch-all":
            return batch_all_loss(
                dist, labels, self.margin, self.soft, self.reduction, self.chunk_elements
            )
        triplets = self.selector()(dist, labels, self.margin)
        d_ap = dist[triplets.anchor, triplets.positive]  # (T,)
        d_an = dist[triplets.anchor, triplets.negative]  # (T,)
        losses = triplet_loss(violation(d_ap, d_an, self.margin, self.soft), self.soft)
        return LossOutput(REDUCERS[self.reduction](losses), triplet_stats(d_ap, d_an, losses))

"""lookalike.losses: triplet and contrastive losses composed of a distance, a selection and a
reducer."""

from lookalike.losses.batch_all import batch_all_loss
from lookalike.losses.contrastive import ContrastiveLoss, pair_losses
from lookalike.losses.reduction import REDUCERS, mean_over_all, mean_over_positive
from lookalike.losses.stats import pair_stats, stats_from_sums, triplet_stats
from lookalike.losses.triplet import TripletLoss, triplet_selections

__all__ = [
    "REDUCERS",
    "ContrastiveLoss",
    "TripletLoss",
    "batch_all_loss",
    "mean_over_all",
    "mean_over_positive",
    "pair_losses",
    "pair_stats",
    "stats_from_sums",
    "triplet_selections",
    "triplet_stats",
]

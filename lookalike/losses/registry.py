"""The losses by name, each built from one :class:`LossSettings` (``--loss`` choices).

A loss is any ``nn.Module`` whose ``forward(embeddings (B, D), labels (B,))`` returns a
:class:`lookalike.types.LossOutput`. Adding one is its own file plus one ``LOSSES.register``
line (docs/extending.md); the command line, config validation and ``--help`` follow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from lookalike.losses.contrastive import ContrastiveLoss
from lookalike.losses.triplet import TripletLoss
from lookalike.registry import Registry


@dataclass(frozen=True)
class LossSettings:
    """What a loss may be built from: the objective options of a run, already parsed."""

    selection: str = "semi-hard"  # in-batch (or "offline") triplet selection
    distance: str = "euclidean"
    margin: float = 0.2
    soft_margin: bool = False
    pair_ratio: tuple[int, int] = (1, 3)  # contrastive positives : negatives
    contrastive_margin: float = 0.5
    generator: torch.Generator | None = None  # the run's stream for random choices


LossFactory = Callable[[LossSettings], nn.Module]


def triplet(settings: LossSettings) -> nn.Module:
    return TripletLoss(selection=settings.selection, margin=settings.margin,
                       soft=settings.soft_margin, distance=settings.distance)


def contrastive(settings: LossSettings) -> nn.Module:
    """Pairs in the configured ratio; random negatives from ``settings.generator``."""
    return ContrastiveLoss(neg_margin=settings.contrastive_margin, distance=settings.distance,
                           ratio=settings.pair_ratio, generator=settings.generator)


LOSSES: Registry[LossFactory] = Registry("--loss")
LOSSES.register("triplet", triplet)
LOSSES.register("contrastive", contrastive)


def create_loss(name: str, settings: LossSettings) -> nn.Module:
    """The loss registered as ``name``, built from ``settings``."""
    return LOSSES.get(name)(settings)

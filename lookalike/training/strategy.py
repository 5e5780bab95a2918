"""A mining strategy is a plain value: the loss that selects triplets and the sampler that
builds batches. A run follows a :class:`TrainingPlan` of phases, each a strategy from some
epoch on, so the hybrid's warm-up is simply its first phase.

Online strategies (batch-all, batch-hard, semi-hard, any registered selector) draw P x K
class-balanced batches and let the loss choose triplets inside each batch. Offline draws a
fixed list of random (anchor, positive, negative) triplets once, before training. The
pooled strategies (docs/design.md 2.1) have a warm-up phase of online mining, then a phase
whose sampler takes each anchor's mined hard positives and negatives through
``set_pools``, which the pool-refresh callback calls: hybrid injects them into P x K
batches (or, with ``--hybrid-batches classes``, builds batches of neighbouring classes),
offline-hard turns them into a fixed triplet list. With ``--loss contrastive``
(docs/design.md 2.2) the loss trains on pairs chosen inside P x K batches, whatever the
online ``--mining``. P, K and the epoch length not given are fitted to the training labels
(:class:`BatchShape`); every epoch has the same number of batches, so strategies compare at
equal cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import nn

from lookalike.losses.registry import LossSettings, create_loss
from lookalike.mining.offline import OfflineTripletSampler, random_triplets
from lookalike.mining.online import online_selections
from lookalike.mining.pools import Pools
from lookalike.registry import Registry
from lookalike.sampling import PKSampler
from lookalike.sampling.batch_shape import BatchShape, resolve_batch_shape
from lookalike.sampling.class_neighbours import ClassNeighbourBatchSampler
from lookalike.sampling.injecting import HardPositiveBatchSampler, anchors_per_class
from lookalike.sampling.pool_triplets import PoolTripletSampler

if TYPE_CHECKING:
    from lookalike.training.config import TrainConfig


class BatchSampler(Protocol):
    """What a strategy's sampler does: index lists per epoch, reseeded by ``set_epoch``."""

    def set_epoch(self, epoch: int) -> None: ...

    def __iter__(self) -> Iterator[list[int]]: ...

    def __len__(self) -> int: ...


class PooledSampler(BatchSampler, Protocol):
    """A sampler that builds batches from mined pools, handed over by the pool refresh."""

    def set_pools(self, pools: Pools) -> None: ...


@dataclass(frozen=True)
class Strategy:
    """The loss and the sampler of a phase of training."""

    loss: nn.Module
    sampler: BatchSampler
    batches_per_epoch: int

    def batches(self, epoch: int) -> Iterator[Sequence[int]]:
        """The epoch's batches, reseeded with seed + epoch so a resumed epoch is identical."""
        self.sampler.set_epoch(epoch)
        return islice(iter(self.sampler), self.batches_per_epoch)


@dataclass(frozen=True)
class Phase:
    """A strategy used from ``first_epoch`` on (until the next phase starts)."""

    first_epoch: int
    strategy: Strategy


@dataclass(frozen=True)
class TrainingPlan:
    """The phases of a run, in epoch order (one phase for most strategies)."""

    phases: tuple[Phase, ...]
    shape: BatchShape | None = None  # what the batches look like and why (for the log)

    def phase_for(self, epoch: int) -> Phase:
        return [phase for phase in self.phases if phase.first_epoch <= epoch][-1]

    def strategy_for(self, epoch: int) -> Strategy:
        return self.phase_for(epoch).strategy

    @property
    def batches_per_epoch(self) -> int:
        return self.phases[-1].strategy.batches_per_epoch

    def pooled_sampler(self) -> PooledSampler | None:
        """The sampler that takes mined pools, if a phase has one."""
        for phase in self.phases:
            if hasattr(phase.strategy.sampler, "set_pools"):
                sampler: PooledSampler = phase.strategy.sampler  # type: ignore[assignment]
                return sampler
        return None


def loss_settings(config: TrainConfig, selection: str,
                  generator: torch.Generator | None = None) -> LossSettings:
    """The objective options of ``config`` with the in-batch ``selection`` of a phase, and
    the run's ``generator`` for the loss's random choices."""
    from lookalike.training.config import parse_pair_ratio

    objective = config.objective
    return LossSettings(selection=selection, distance=objective.distance,
                        margin=objective.margin, soft_margin=objective.soft_margin,
                        pair_ratio=parse_pair_ratio(objective.pair_ratio),
                        contrastive_margin=objective.contrastive_margin, generator=generator)


def pk_strategy(config: TrainConfig, labels: np.ndarray, selection: str, shape: BatchShape,
                generator: torch.Generator | None = None) -> Strategy:
    """P x K batches, the loss choosing inside each (triplets, or pairs for contrastive)."""
    batches = shape.batches_per_epoch
    sampler = PKSampler(labels, shape.classes_per_batch, shape.items_per_class,
                        seed=config.machine.seed, batches_per_epoch=batches)
    loss = create_loss(config.objective.loss, loss_settings(config, selection, generator))
    return Strategy(loss, sampler, min(batches, len(sampler)))


def offline_plan(config: TrainConfig, labels: np.ndarray, shape: BatchShape) -> TrainingPlan:
    """A fixed list of random triplets, drawn once with the run's seed."""
    seed = config.machine.seed
    triplets = random_triplets(labels, per_anchor=1, seed=seed)
    sampler = OfflineTripletSampler(triplets, max(1, shape.batch_size // 3), seed=seed)
    loss = create_loss("triplet", loss_settings(config, "offline"))
    strategy = Strategy(loss, sampler, min(shape.batches_per_epoch, len(sampler)))
    return TrainingPlan((Phase(0, strategy),), shape)


def hybrid_sampler(config: TrainConfig, labels: np.ndarray, shape: BatchShape) -> PooledSampler:
    """The ``--hybrid-batches`` sampler: P x K anchors with their pooled items injected
    ("items"), or a seed class and its nearest classes by the pools ("classes")."""
    pools, seed, batches = config.pools, config.machine.seed, shape.batches_per_epoch
    if pools.hybrid_batches == "classes":
        return ClassNeighbourBatchSampler(labels, shape.classes_per_batch,
                                          shape.items_per_class, seed=seed,
                                          batches_per_epoch=batches)
    anchors = anchors_per_class(shape.items_per_class, pools.inject_negatives,
                                shape.small_classes)
    return HardPositiveBatchSampler(labels, None, shape.classes_per_batch, anchors,
                                    inject_negatives=pools.inject_negatives, seed=seed,
                                    batches_per_epoch=batches)


def pooled_plan(config: TrainConfig, labels: np.ndarray, shape: BatchShape) -> TrainingPlan:
    """Online warm-up, then batches from pools that the pool-refresh callback provides."""
    objective, pools, seed = config.objective, config.pools, config.machine.seed
    batches_per_epoch = shape.batches_per_epoch
    sampler: PooledSampler
    if objective.mining == "offline-hard":
        sampler = PoolTripletSampler(max(1, shape.batch_size // 3), seed=seed)
        selection = "offline"
    else:
        sampler = hybrid_sampler(config, labels, shape)
        selection = pools.hybrid_selection
    loss = create_loss("triplet", loss_settings(config, selection))
    pooled = Phase(pools.warmup_epochs, Strategy(loss, sampler, batches_per_epoch))
    if pools.warmup_epochs == 0:
        return TrainingPlan((pooled,), shape)
    warmup = pk_strategy(config, labels, pools.warmup_selection, shape)
    warmup = Strategy(warmup.loss, warmup.sampler, batches_per_epoch)
    return TrainingPlan((Phase(0, warmup), pooled), shape)


PlanBuilder = Callable[["TrainConfig", np.ndarray, BatchShape], TrainingPlan]

# --mining: the strategies beyond plain in-batch selection. Every registered in-batch
# selection (lookalike.mining.online.SELECTORS, plus batch-all) is an online strategy too.
STRATEGIES: Registry[PlanBuilder] = Registry("--mining")
STRATEGIES.register("offline", offline_plan)
STRATEGIES.register("hybrid", pooled_plan)
STRATEGIES.register("offline-hard", pooled_plan)


def mining_choices() -> tuple[str, ...]:
    """``--mining`` names: the online selections, then the registered strategies."""
    return (*online_selections(), *STRATEGIES.names())


def batch_shape(config: TrainConfig, labels: np.ndarray) -> BatchShape:
    """P, K and the epoch length of a run over items with ``labels``: the explicit -P, -K
    and --batches-per-epoch, the rest fitted to the labels (sampling/batch_shape.py)."""
    objective = config.objective
    return resolve_batch_shape(labels, objective.classes_per_batch, objective.items_per_class,
                               config.optim.batches_per_epoch)


def build_plan(config: TrainConfig, labels: np.ndarray,
               generator: torch.Generator | None = None) -> TrainingPlan:
    """The phases of training that ``config.objective`` names, over items with ``labels``;
    ``generator`` is the run's stream for the loss's random choices (saved with the run)."""
    objective = config.objective
    shape = batch_shape(config, labels)
    if objective.loss == "triplet" and objective.mining in STRATEGIES:
        return STRATEGIES.get(objective.mining)(config, labels, shape)
    # an online selection; other losses (contrastive) choose their pairs in P x K batches
    selection = objective.mining if objective.mining in online_selections() else "semi-hard"
    strategy = pk_strategy(config, labels, selection, shape, generator)
    return TrainingPlan((Phase(0, strategy),), shape)

"""The fit loop: for each epoch, the batches of a sampler, forward, loss, backward, step.

Everything else happens in callbacks on five hooks (run start, epoch start, batch end,
epoch end, run end) plus one for Ctrl-C: validation, checkpoints, the hybrid's pool
refresh, the non-finite guard, progress bars, the learning-rate schedule, backbone
freezing (lookalike/training/callbacks/). The loop writes no file and knows no strategy;
it only reads and advances a :class:`TrainingState`, which is also what ``--resume``
restores, so a resumed epoch replays the same batches and random streams.

Host synchronisation per step: the loss statistics (one ``tolist`` inside the loss) and the
loss value (one ``item``), which the progress display, the log and the guard all share.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from lookalike.distributed import ProcessGroup, gather_with_grad, shard_bounds
from lookalike.errors import TrainingInterrupted
from lookalike.training.mixed_precision import autocast_context
from lookalike.training.progress import EpochProgress
from lookalike.training.strategy import TrainingPlan
from lookalike.types import LossOutput, LossStats

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
# (indices of the epoch's batches, how many to skip) -> (indices, images, labels) per batch
BatchLoader = Callable[[Sequence[Sequence[int]], int],
                       Iterator[tuple[Sequence[int], torch.Tensor, torch.Tensor]]]


class StepResult(NamedTuple):
    """What one optimiser step reports to the callbacks (host floats, no tensors)."""

    loss: float
    stats: LossStats
    batch_size: int


@dataclass
class TrainingState:
    """What the loop and its callbacks share; the position part is saved for --resume.

    ``epoch`` is the epoch in progress (0-based) and ``progress`` its running sums, so
    (epoch, progress.batches_done) is the exact position. ``record`` collects the epoch's
    metrics line: the loop puts in the epoch, the training means and the seconds, callbacks
    add theirs (refresh_seconds, val_map_at_r, ...).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    plan: TrainingPlan
    load_batches: BatchLoader
    augment: Augmentation
    generator: torch.Generator  # augmentation stream, reseeded per epoch
    pair_generator: torch.Generator  # the loss's random choices (contrastive negatives)
    device: torch.device
    epochs: int
    seed: int
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    scaler: torch.amp.GradScaler | None = None
    amp: bool = False
    epoch: int = 0
    progress: EpochProgress = field(default_factory=EpochProgress)
    elapsed: float = 0.0  # training and mining seconds over the run, without validation
    best_score: float = -1.0
    record: dict[str, Any] = field(default_factory=dict)
    # the position of the last committed save, as "epoch E" or "epoch E, batch B" (None: none)
    committed: str | None = None
    group: ProcessGroup = field(default_factory=ProcessGroup)  # alone, or rank r of W
    # what the step trains on the loaded batches instead of ``model`` (None: ``model``): the
    # feature cache's tail, which shares its parameters (training/feature_cache.py)
    step_model: nn.Module | None = None


class Callback:
    """Base class: every hook does nothing, so a callback overrides only what it needs."""

    def on_run_start(self, state: TrainingState) -> None:
        """Before the first epoch (also of a resumed run)."""

    def on_epoch_start(self, state: TrainingState) -> None:
        """Before the epoch's first batch is drawn; may change the sampler's pools."""

    def on_batch_end(self, state: TrainingState, step: StepResult) -> None:
        """After the optimiser step of one batch."""

    def on_epoch_end(self, state: TrainingState) -> None:
        """After the epoch's last batch; ``state.record`` holds its training means."""

    def on_run_end(self, state: TrainingState) -> None:
        """After the last epoch."""

    def on_interrupt(self, state: TrainingState) -> None:
        """Ctrl-C: ``state`` is the exact position (epoch, batches done)."""


def train_step(state: TrainingState, loss_fn: nn.Module, images: torch.Tensor,
               labels: torch.Tensor) -> StepResult:
    """Augment, embed, loss, backward and step on one batch.

    With several processes (lookalike/distributed.py) the batch is the global one: every
    rank augments it with the same draws, embeds its contiguous slice, and gathers all
    embeddings with their gradients, so the loss sees the batch one process would see.
    """
    images = state.augment(images, state.generator)
    labels = labels.to(state.device)
    group = state.group
    if group.distributed:
        start, stop = shard_bounds(len(labels), group.rank, group.world_size)
        images = images[start:stop]
    images = images.to(state.device, non_blocking=True)
    model = state.model if state.step_model is None else state.step_model
    with autocast_context(state.device, state.amp):
        embeddings = model(images)  # (B, D), or this rank's (B / W, D)
    embeddings = gather_with_grad(embeddings)  # (B, D): alone, the same tensor
    output: LossOutput = loss_fn(embeddings.float(), labels)
    state.optimizer.zero_grad(set_to_none=True)
    if state.scaler is not None and state.scaler.is_enabled():
        state.scaler.scale(output.loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        output.loss.backward()
        state.optimizer.step()
    return StepResult(output.loss.item(), output.stats, len(labels))


def fit(state: TrainingState, callbacks: Sequence[Callback]) -> TrainingState:
    """Train from ``state``'s position to ``state.epochs``, calling ``callbacks`` in order.

    Raises:
        TrainingInterrupted: on Ctrl-C, after the ``on_interrupt`` hooks saved the position.
    """
    for callback in callbacks:
        callback.on_run_start(state)
    while state.epoch < state.epochs:
        started = time.perf_counter()
        if state.progress.batches_done == 0:
            # A fresh epoch draws its augmentations from a stream of its own (seed + epoch).
            state.generator.manual_seed((state.seed * 100_003 + state.epoch) % 2**64)
        state.record = {"epoch": state.epoch + 1, "refresh_seconds": 0.0}
        trained: float | None = None
        try:
            for callback in callbacks:
                callback.on_epoch_start(state)
            strategy = state.plan.strategy_for(state.epoch)
            state.model.train()
            batches = list(strategy.batches(state.epoch))
            loaded = state.load_batches(batches, state.progress.batches_done)
            while True:
                step_started = time.perf_counter()
                batch = next(loaded, None)
                if batch is None:
                    break
                _, images, labels = batch
                step = train_step(state, strategy.loss, images, labels)
                state.progress.add(step.loss, step.stats, step.batch_size)
                state.progress.seconds += time.perf_counter() - step_started
                for callback in callbacks:
                    callback.on_batch_end(state, step)
            trained = time.perf_counter()
            state.elapsed += trained - started
            state.record.update(state.progress.summary(), seconds=state.elapsed)
            for callback in callbacks:
                callback.on_epoch_end(state)
        except KeyboardInterrupt:
            # Saved mid-epoch: resume skips the batches done (all of them, if the
            # interrupt came during validation) and replays the same random streams.
            if trained is None:  # during validation, the epoch's time is already counted
                state.elapsed += time.perf_counter() - started
            for callback in callbacks:
                callback.on_interrupt(state)
            raise TrainingInterrupted(
                f"interrupted at epoch {state.epoch + 1}, batch {state.progress.batches_done + 1}"
            ) from None
        state.epoch += 1
        state.progress = EpochProgress()
    for callback in callbacks:
        callback.on_run_end(state)
    return state

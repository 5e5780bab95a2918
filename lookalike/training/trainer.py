"""``train()`` and ``resume()``: from a TrainConfig to a run folder with checkpoints.

The route is a straight line: open the data (training/data.py), build the model, the
strategy's plan (training/strategy.py), the optimiser and schedule (training/optim.py),
restore the saved position when resuming, choose the callbacks, and hand all of it to the
fit loop (training/fit.py). Whether this process writes the run folder is decided here, in
:func:`callbacks_for`, and nowhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lookalike.allocator import tune_malloc
from lookalike.data import ImageDataset
from lookalike.data.pipeline import cache_resized, default_cache_dir
from lookalike.denormals import flush_denormals
from lookalike.distributed import (
    current_group,
    globalise_batchnorm,
    join_from_env,
    process_device,
)
from lookalike.errors import ConfigError, TrainingInterrupted
from lookalike.models import EmbedderConfig, build_embedder, pretrained_normalization
from lookalike.models.checkpoint import load_checkpoint
from lookalike.models.state import load_training_state
from lookalike.training.augment import build_augment
from lookalike.training.batches import batch_loader
from lookalike.training.callbacks import (
    BackboneFreezing,
    Checkpointing,
    ConsoleLog,
    LearningRateSchedule,
    NonFiniteGuard,
    PoolRefresh,
    ProgressBar,
    Validation,
)
from lookalike.training.callbacks.checkpointing import position
from lookalike.training.callbacks.distributed_step import DistributedStep
from lookalike.training.callbacks.feature_caching import FeatureCaching
from lookalike.training.config import TrainConfig, resume_changes
from lookalike.training.data import TrainingData, channel_statistics, prepare_training_data
from lookalike.training.fit import Callback, TrainingState, fit
from lookalike.training.mixed_precision import describe_precision
from lookalike.training.optim import build_optimizer, build_scheduler, load_optimizer_state
from lookalike.training.process import is_main_process
from lookalike.training.progress import EpochProgress
from lookalike.training.run import RunDirectory
from lookalike.training.strategy import TrainingPlan, build_plan


@dataclass
class TrainResult:
    """Where the run is and how it ended."""

    run: RunDirectory
    records: list[dict[str, Any]]
    best_map_at_r: float

    @property
    def last(self) -> dict[str, Any]:
        return self.records[-1] if self.records else {}


def select_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is available on this machine")
    return torch.device(name)


def embedder_config(config: TrainConfig, data: TrainingData) -> EmbedderConfig:
    """The architecture to train: a pretrained backbone keeps the input normalisation its
    weights were trained with; one trained from scratch uses the data's own statistics
    (measured once, after ``--cache-images``, so the images are decoded once)."""
    model = config.model
    normalization = pretrained_normalization(model.backbone) if model.pretrained else None
    mean, std = normalization or channel_statistics(data.train)
    return EmbedderConfig(backbone=model.backbone, embedding_dim=model.embedding_dim,
                          input_size=model.input_size, in_channels=data.channels,
                          mean=mean, std=std, distance=config.objective.distance,
                          mirror_average=model.mirror_average,
                          # only when set, so the fingerprints of avg-pooled models stay
                          backbone_options={"pooling": model.pooling} if model.pooling != "avg"
                          else {})


def open_data(config: TrainConfig, show_progress: bool,
              log: Callable[[str], None]) -> TrainingData:
    """The training and validation datasets; with ``--cache-images``, decoded and resized
    once, so batches become array slices."""
    data = prepare_training_data(config)
    if not config.data.cache_images:
        return data

    def cached(dataset: ImageDataset) -> ImageDataset:
        collection = cache_resized(dataset.collection, config.model.input_size,
                                   dataset.channels, workers=config.data.workers,
                                   progress=show_progress, log=log)
        return ImageDataset(collection, channels=dataset.channels)

    return dataclasses.replace(data, train=cached(data.train), val=cached(data.val))


def callbacks_for(config: TrainConfig, run: RunDirectory, data: TrainingData,
                  show_progress: bool, log: Callable[[str], None]) -> list[Callback]:
    """The callbacks of a run, in hook order. Only the main process writes files or prints:
    the others train and validate alike but get no writer, bar or log line."""
    main = is_main_process()
    objective, pools = config.objective, config.pools
    callbacks: list[Callback] = []
    if config.model.freeze_backbone_epochs:
        callbacks.append(BackboneFreezing(config.model.freeze_backbone_epochs))
    if config.model.feature_cache:  # after the freezing, before anything that trains
        # the tail starts after what stays frozen all run: the backbone, or its prefix
        frozen_all_run = config.model.freeze_backbone_epochs >= config.optim.epochs
        callbacks.append(FeatureCaching(
            data.train, 0 if frozen_all_run else config.model.train_blocks or 0,
            config.model.cached_views, config.model.feature_cache_dtype,
            workers=config.data.workers,
            folder=default_cache_dir() if config.data.cache_images else None,
            show_progress=show_progress and main, log=log if main else lambda _: None))
    if objective.loss == "triplet" and objective.mining in ("hybrid", "offline-hard"):
        callbacks.append(PoolRefresh(data.train, pools, objective.distance,
                                     one_shot=objective.mining == "offline-hard",
                                     pools_path=run.pools_path if main else None))
    if current_group().distributed:  # after everything that changes what trains
        callbacks.append(DistributedStep())
    callbacks += [ProgressBar(show_progress and main), LearningRateSchedule(),
                  NonFiniteGuard(run.root),
                  Validation(data.val, objective.distance, show_progress and main)]
    if main:
        callbacks += [Checkpointing(run, data.class_names, config.to_dict()),
                      ConsoleLog(log, pairs=objective.loss == "contrastive")]
    return callbacks


def restore(state: TrainingState, run: RunDirectory, log: Callable[[str], None]) -> None:
    """Put the saved optimiser, schedule, random streams and position into ``state``."""
    saved = load_training_state(run.state)
    load_optimizer_state(state.optimizer, saved["optimizer"])
    if state.scheduler is not None:
        state.scheduler.load_state_dict(saved["scheduler"])
    state.generator.set_state(saved["generator"])
    if "pair_generator" in saved:
        state.pair_generator.set_state(saved["pair_generator"])
    torch.set_rng_state(saved["torch_rng"])
    state.epoch, state.best_score = saved["epoch"], saved["best_map_at_r"]
    state.elapsed, state.progress = saved["elapsed"], EpochProgress(**saved["progress"])
    state.committed = position(state.epoch, state.progress)
    if state.group.is_main:
        run.truncate_metrics(state.epoch)
    log(f"resuming {run.root} at epoch {state.epoch + 1}, "
        f"batch {state.progress.batches_done + 1}")


def run_training(config: TrainConfig, run: RunDirectory, *, resuming: bool,
                 show_progress: bool, log: Callable[[str], None],
                 backbone: torch.nn.Module | None,
                 extra_callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Build everything ``config`` names and fit, from the saved position if ``resuming``."""
    machine = config.machine
    tune_malloc()
    flush_denormals()  # late epochs' tiny gradients stay fast (lookalike/denormals.py)
    if machine.threads:
        torch.set_num_threads(machine.threads)
    group = join_from_env(select_device(machine.device))  # alone, or a rank of torchrun's
    device = process_device(select_device(machine.device), group)
    torch.manual_seed(machine.seed)  # the global stream, for any library that draws from it
    data = open_data(config, show_progress, log)
    resuming = resuming and run.state.exists()
    if resuming:  # the architecture and weights come from the last checkpoint
        model, _ = load_checkpoint(run.last, backbone=backbone)
    else:  # a fresh start, also where a run was killed before its first commit
        if group.is_main:
            run.truncate_metrics(0)
        model = build_embedder(embedder_config(config, data), pretrained=config.model.pretrained,
                               backbone=backbone, seed=machine.seed)
    model = model.to(device)
    if group.distributed:  # batch statistics over the global batch, as one process has them
        globalise_batchnorm(model)
    if config.model.train_blocks is not None:
        model.set_train_blocks(config.model.train_blocks)
    pair_generator = torch.Generator().manual_seed(machine.seed + 1)
    plan = build_plan(config, data.train.collection.labels, pair_generator)
    if plan.shape is not None and is_main_process():
        log(plan.shape.describe())  # P, K and the epoch length fitted to the labels, and why
    optimizer = build_optimizer(model, config)
    if is_main_process():
        log(describe_precision(device, machine.amp))
    state = TrainingState(
        model=model, optimizer=optimizer, plan=plan,
        load_batches=batch_loader(data.train, config.data.workers),
        augment=build_augment(config),
        generator=torch.Generator().manual_seed(machine.seed), pair_generator=pair_generator,
        device=device,
        epochs=config.optim.epochs, seed=machine.seed,
        scheduler=build_scheduler(optimizer, config, plan.batches_per_epoch),
        scaler=torch.amp.GradScaler("cuda", enabled=machine.amp and device.type == "cuda"),
        amp=machine.amp, group=group,
    )
    if resuming:
        restore(state, run, log)
    if group.is_main:  # how this start or resume runs, kept in config.json
        global_batch = _global_batch(config, plan)
        run.record_launch({"world_size": group.world_size, "backend": group.backend,
                           "device": str(device), "start_epoch": state.epoch + 1,
                           "start_batch": state.progress.batches_done + 1,
                           "global_batch": global_batch,
                           "per_rank_batch": -(-global_batch // group.world_size)})
    try:
        fit(state, [*callbacks_for(config, run, data, show_progress, log), *extra_callbacks])
    except TrainingInterrupted as stopped:
        raise TrainingInterrupted(f"{stopped}; state saved, continue with: "
                                  f"lookalike train --resume {run.root}") from None
    return TrainResult(run=run, records=run.read_metrics(), best_map_at_r=state.best_score)


def _global_batch(config: TrainConfig, plan: TrainingPlan) -> int:
    """Items per optimiser step (P x K as fitted to the data)."""
    if plan.shape is not None:
        return int(plan.shape.batch_size)
    objective = config.objective
    return int((objective.classes_per_batch or 0) * (objective.items_per_class or 0))


def train(config: TrainConfig, out_dir: str | Path, *, argv: list[str] | None = None,
          show_progress: bool = True, log: Callable[[str], None] = print,
          backbone: torch.nn.Module | None = None,
          extra_callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Train an embedder as ``config`` says, writing everything under ``out_dir``.

    ``backbone`` plugs in any ``nn.Module`` returning (B, F) features or (B, F, h, w) maps
    instead of ``config.model.backbone`` (which then only names it); pass the same module
    again to resume, evaluate or index its checkpoints. ``extra_callbacks`` run after the
    run's own, on every hook (training/fit.py).
    """
    run = RunDirectory(Path(out_dir))
    config.validate()
    # every process looks before the main one creates the folder: a rank that looked after
    # would find the new run and refuse it (torchrun, lookalike/distributed.py)
    group = join_from_env(select_device(config.machine.device))
    already = run.holds_run()
    if group.distributed:
        torch.distributed.barrier()
    if already:
        raise ConfigError(
            f"{run.root} already holds a run; pass --resume to continue it or choose another --out"
        )
    if is_main_process():
        run.root.mkdir(parents=True, exist_ok=True)
        run.write_config(config, argv)
    return run_training(config, run, resuming=False, show_progress=show_progress, log=log,
                        backbone=backbone, extra_callbacks=extra_callbacks)


def resume(out_dir: str | Path, *, changes: Mapping[str, Any] | None = None,
           argv: list[str] | None = None, show_progress: bool = True,
           log: Callable[[str], None] = print,
           backbone: torch.nn.Module | None = None,
           extra_callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Continue the run in ``out_dir`` with its saved config.

    ``changes`` are options given again with ``--resume``: equal values are fine, the
    resumable ones (``--epochs`` to extend a run, machine options) are applied and saved,
    any other change is refused with a line naming it (training/config.py ``RESUMABLE``).
    """
    run = RunDirectory(Path(out_dir))
    saved = run.read_config()
    applied = resume_changes(saved, changes or {})
    config = saved.with_options(**applied).validate()
    if applied and is_main_process():
        run.write_config(config, argv)
    return run_training(config, run, resuming=True, show_progress=show_progress, log=log,
                        backbone=backbone, extra_callbacks=extra_callbacks)

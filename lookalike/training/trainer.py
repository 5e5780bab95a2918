"""``train()``: one training run from a TrainConfig to a run folder with checkpoints.

The trainer wires the parts together (data, model, strategy, optimiser, loop, validation)
and owns the run's persistence: ``last`` after every epoch, ``best`` on a new best
validation MAP@R, and a ``state`` folder that lets ``--resume`` continue at the same epoch
and batch with the same optimiser moments and random streams. Ctrl-C saves that state first.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lookalike.data import ArrayCollection, Augment, ImageDataset
from lookalike.data.pipeline import PrefetchingLoader, cache_resized
from lookalike.errors import ConfigError, TrainingError
from lookalike.evaluation import evaluate_embeddings
from lookalike.models import EmbedderConfig, build_embedder, embed, pretrained_normalization
from lookalike.models.checkpoint import (
    load_checkpoint,
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from lookalike.training.config import TrainConfig
from lookalike.training.data import TrainingData, channel_statistics, prepare_training_data
from lookalike.training.loop import EpochProgress, train_epoch
from lookalike.training.optim import build_optimizer, build_scheduler
from lookalike.training.run import RunDirectory
from lookalike.training.strategy import build_strategy


class TrainingInterrupted(TrainingError):
    """Ctrl-C during training; the position was saved and ``--resume`` continues from it."""


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
    (measured here, after ``--cache-images``, so the images are decoded once)."""
    normalization = pretrained_normalization(config.backbone) if config.pretrained else None
    mean, std = normalization or channel_statistics(data.train)
    return EmbedderConfig(
        backbone=config.backbone,
        embedding_dim=config.embedding_dim,
        input_size=config.input_size,
        in_channels=data.channels,
        mean=mean,
        std=std,
    )


def cache_training_data(data: TrainingData, config: TrainConfig, show_progress: bool,
                        log: Callable[[str], None]) -> TrainingData:
    """Image files decoded and resized once (``--cache-images``): batches become array slices."""
    def cached(dataset: ImageDataset) -> ImageDataset:
        collection = cache_resized(dataset.collection, config.input_size, dataset.channels,
                                   workers=config.workers, progress=show_progress, log=log)
        return ImageDataset(collection, channels=dataset.channels)

    return dataclasses.replace(data, train=cached(data.train), val=cached(data.val))


def epoch_batches(strategy: Any, epoch: int, data: TrainingData, config: TrainConfig,
                  progress: EpochProgress) -> tuple[Any, Callable]:
    """The epoch's batches and how to load them: decoded by ``--workers`` processes ahead of
    use for image files, sliced directly from in-memory (or cached) arrays."""
    batches = strategy.batches(epoch)
    if config.workers == 0 or isinstance(data.train.collection, ArrayCollection):
        return batches, data.train.batch
    batches = list(batches)
    loader = PrefetchingLoader(data.train, batches[progress.batches_done:], config.workers)
    return batches, loader.load


def validate(model: torch.nn.Module, data: TrainingData, device: torch.device,
             show_progress: bool) -> dict[str, float]:
    """Leave-one-out retrieval on the held-out split: the numbers that pick ``best``."""
    embeddings = embed(model, data.val, batch_size=512, device=device, progress=show_progress)
    metrics = evaluate_embeddings(embeddings, data.val.collection.labels)
    return {"val_map_at_r": metrics.map_at_r, "val_precision_at_1": metrics.precision_at_1}


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    argv: list[str] | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
    backbone: torch.nn.Module | None = None,
) -> TrainResult:
    """Train an embedder as ``config`` says, writing everything under ``out_dir``.

    With ``resume=True`` the run folder's own config is used (only ``epochs`` may grow)
    and training continues from the saved state. ``backbone`` plugs in any ``nn.Module``
    returning (B, F) features or (B, F, h, w) maps instead of ``config.backbone`` (which then
    only names it); pass the same module again to resume, evaluate or index its checkpoints.
    """
    run = RunDirectory(Path(out_dir))
    if resume:
        epochs = config.epochs
        config = run.read_config()
        config.epochs = max(config.epochs, epochs)
    elif run.config_path.exists() and (run.last.exists() or run.state.exists()):
        raise ConfigError(
            f"{run.root} already holds a run; pass --resume to continue it or choose another --out"
        )
    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = select_device(config.device)
    torch.manual_seed(config.seed)  # weight initialisation

    data = prepare_training_data(config)
    if config.cache_images:
        data = cache_training_data(data, config, show_progress, log)
    model = build_embedder(embedder_config(config, data), pretrained=config.pretrained,
                           backbone=backbone).to(device)
    strategy = build_strategy(config, data.train, run.root)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, strategy.batches_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and device.type == "cuda")
    augment = Augment(crop_padding=config.crop_padding, flip=config.flip)

    start_epoch, progress, best, elapsed = 0, EpochProgress(), -1.0, 0.0
    generator = torch.Generator().manual_seed(config.seed)
    if resume and run.state.exists():
        model, _ = load_checkpoint(run.last, backbone=backbone)
        model = model.to(device)
        optimizer = build_optimizer(model, config)
        scheduler = build_scheduler(optimizer, config, strategy.batches_per_epoch)
        state = load_training_state(run.state)
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, best, elapsed = state["epoch"], state["best_map_at_r"], state["elapsed"]
        progress = EpochProgress(**state["progress"])
        run.truncate_metrics(start_epoch)
        log(f"resuming {run.root} at epoch {start_epoch + 1}, batch {progress.batches_done + 1}")
    else:
        run.root.mkdir(parents=True, exist_ok=True)
        run.write_config(config, argv)

    def save(epoch: int, progress: EpochProgress) -> None:
        save_checkpoint(run.last, model, embedder_config(config, data),
                        class_names=data.class_names, training_config=config.to_dict())
        save_training_state(run.state, {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else {},
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "progress": progress.to_dict(),
            "best_map_at_r": best,
            "elapsed": elapsed,
        })

    records = run.read_metrics()
    for epoch in range(start_epoch, config.epochs):
        if progress.batches_done == 0:
            # A fresh epoch draws its augmentations from a stream of its own (seed + epoch).
            generator.manual_seed(config.seed * 100_003 + epoch)
        epoch_started = time.perf_counter()
        if config.freeze_backbone_epochs:
            model.freeze_backbone(epoch < config.freeze_backbone_epochs)
        try:
            refresh_seconds = strategy.start_epoch(epoch, model=model, device=device)
            batches, load_batch = epoch_batches(strategy, epoch, data, config, progress)
            train_epoch(
                model, strategy.loss, batches, load_batch, augment,
                optimizer, progress=progress, generator=generator, device=device,
                scheduler=scheduler, scaler=scaler, amp=config.amp,
                total=strategy.batches_per_epoch,
                description=f"epoch {epoch + 1}/{config.epochs}", show_progress=show_progress,
            )
            trained = time.perf_counter()
            validation = validate(model, data, device, show_progress)
            validation_seconds = time.perf_counter() - trained
        except KeyboardInterrupt:
            # Saved mid-epoch: resume skips the batches done (all of them, if the
            # interrupt came during validation) and replays the same random streams.
            elapsed += time.perf_counter() - epoch_started
            save(epoch, progress)
            raise TrainingInterrupted(
                f"interrupted at epoch {epoch + 1}, batch {progress.batches_done + 1}; "
                f"state saved, continue with: lookalike train --resume {run.root}"
            ) from None
        elapsed += trained - epoch_started  # training and mining time, not validation
        record = {"epoch": epoch + 1, **progress.summary(), "refresh_seconds": refresh_seconds,
                  **validation, "validation_seconds": validation_seconds, "seconds": elapsed}
        run.log_epoch(record)
        records.append(record)
        score = validation["val_map_at_r"]
        if math.isnan(score):  # no validation class has two items to retrieve: best = latest
            is_best = best < 0
        else:
            is_best, best = score > best, max(best, score)
        if is_best:
            save_checkpoint(run.best, model, embedder_config(config, data),
                            class_names=data.class_names, training_config=config.to_dict())
        save(epoch + 1, EpochProgress())
        log(
            f"epoch {epoch + 1}/{config.epochs}  loss {record['train_loss']:.4f}  "
            f"{'pos-pairs' if config.loss == 'contrastive' else 'pos-triplets'} "
            f"{record['fraction_positive']:.3f}  "
            f"d(a,p) {record['mean_positive_distance']:.3f}  "
            f"d(a,n) {record['mean_negative_distance']:.3f}  "
            f"val MAP@R {record['val_map_at_r']:.4f}  P@1 {record['val_precision_at_1']:.4f}  "
            f"{record['images_per_second']:.0f} img/s"
        )
        progress = EpochProgress()
    return TrainResult(run=run, records=records, best_map_at_r=best)

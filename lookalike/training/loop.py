"""One pass over the training batches: augment, embed, loss, step. No file I/O here.

The loop reports through an :class:`EpochProgress` it updates in place, so the caller can
checkpoint the exact position when the user presses Ctrl-C and resume from that batch.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from lookalike.errors import TrainingError
from lookalike.types import LossOutput

BatchSource = Callable[[Sequence[int]], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class EpochProgress:
    """Running sums of one epoch; saved on interrupt so a resumed epoch reports the same means."""

    batches_done: int = 0
    images: int = 0
    loss_sum: float = 0.0
    fraction_positive_sum: float = 0.0
    positive_distance_sum: float = 0.0
    negative_distance_sum: float = 0.0
    distance_batches: int = 0
    seconds: float = 0.0

    def add(self, output: LossOutput, batch_images: int) -> None:
        stats = output.stats
        self.batches_done += 1
        self.images += batch_images
        self.loss_sum += float(output.loss.detach())
        self.fraction_positive_sum += stats.fraction_positive
        if stats.num_triplets > 0 and math.isfinite(stats.mean_negative_distance):
            self.positive_distance_sum += stats.mean_positive_distance
            self.negative_distance_sum += stats.mean_negative_distance
            self.distance_batches += 1

    def summary(self) -> dict[str, float]:
        """Per-epoch means for the metrics log."""
        batches = max(self.batches_done, 1)
        with_distances = max(self.distance_batches, 1)
        return {
            "train_loss": self.loss_sum / batches,
            "fraction_positive": self.fraction_positive_sum / batches,
            "mean_positive_distance": self.positive_distance_sum / with_distances,
            "mean_negative_distance": self.negative_distance_sum / with_distances,
            "train_images": self.images,
            "train_seconds": self.seconds,
            "images_per_second": self.images / self.seconds if self.seconds > 0 else 0.0,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def autocast_context(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA only; on the CPU it is a no-op, not a slow bfloat16 path."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def train_epoch(
    model: nn.Module,
    loss_fn: nn.Module,
    batches: Iterable[Sequence[int]],
    load_batch: BatchSource,
    augment: Augmentation,
    optimizer: torch.optim.Optimizer,
    *,
    progress: EpochProgress,
    generator: torch.Generator,
    device: torch.device,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    amp: bool = False,
    total: int | None = None,
    description: str = "train",
    show_progress: bool = True,
) -> EpochProgress:
    """Train over ``batches`` (index lists), skipping the ``progress.batches_done`` first ones.

    Raises:
        TrainingError: when the loss is not finite; nothing is stepped for that batch.
    """
    model.train()
    skip = progress.batches_done
    bar = tqdm(total=total, initial=skip, desc=description, disable=not show_progress,
               leave=False, dynamic_ncols=True)
    try:
        for position, indices in enumerate(batches):
            if position < skip:
                continue
            started = time.perf_counter()
            images, labels, _ = load_batch(indices)
            images = augment(images, generator).to(device, non_blocking=True)
            labels = labels.to(device)
            with autocast_context(device, amp):
                embeddings = model(images)
            output: LossOutput = loss_fn(embeddings.float(), labels)
            if not torch.isfinite(output.loss):
                raise TrainingError(
                    f"loss became {float(output.loss.detach())} at batch {position + 1} "
                    "of this epoch; "
                    "training stopped, the last good checkpoint is kept (try a lower --lr)"
                )
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None and scaler.is_enabled():
                scaler.scale(output.loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                output.loss.backward()
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            progress.add(output, len(indices))
            progress.seconds += time.perf_counter() - started
            bar.update(1)
            bar.set_postfix(loss=f"{output.loss.item():.4f}",
                            pos=f"{output.stats.fraction_positive:.3f}")
    finally:
        bar.close()
    return progress

"""Optimiser and learning-rate schedule from a TrainConfig."""

from __future__ import annotations

import torch
from torch import nn

from lookalike.training.config import TrainConfig


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (Adam when weight decay is 0): robust for triplet training from scratch."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Cosine decay to zero over the whole run, stepped per batch (None: constant lr)."""
    if config.lr_schedule == "none":
        return None
    total_steps = max(1, config.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)

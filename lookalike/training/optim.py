"""Optimiser and learning-rate schedule from a TrainConfig."""

from __future__ import annotations

import torch
from torch import nn

from lookalike.training.config import TrainConfig


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (Adam when weight decay is 0): robust for triplet training from scratch.

    A model with a ``backbone`` gets two parameter groups, the backbone's at
    ``lr * backbone_lr_scale``: a pretrained backbone should move less than the fresh head.
    Frozen parameters stay in their group (they just get no gradient), so unfreezing later
    needs no new optimiser.
    """
    backbone = getattr(model, "backbone", None)
    if backbone is None or config.backbone_lr_scale == 1.0:
        groups: list[dict] = [{"params": list(model.parameters()), "lr": config.lr}]
    else:
        inside = {id(p) for p in backbone.parameters()}
        groups = [
            {"params": [p for p in model.parameters() if id(p) in inside],
             "lr": config.lr * config.backbone_lr_scale},
            {"params": [p for p in model.parameters() if id(p) not in inside], "lr": config.lr},
        ]
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Cosine decay to zero over the whole run, stepped per batch (None: constant lr)."""
    if config.lr_schedule == "none":
        return None
    total_steps = max(1, config.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)

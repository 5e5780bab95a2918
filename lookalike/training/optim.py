"""Optimiser and learning-rate schedule from a TrainConfig."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from lookalike.training.config import TrainConfig


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay, 0 by default): robust for triplet training from scratch.

    A model with a ``backbone`` gets two parameter groups, the backbone's at
    ``lr * backbone_lr_scale``: a pretrained backbone should move less than the fresh head.
    Frozen parameters stay in their group (they just get no gradient), so unfreezing later
    needs no new optimiser.
    """
    lr, scale = config.optim.lr, config.model.backbone_lr_scale
    backbone = getattr(model, "backbone", None)
    groups: list[dict[str, Any]]
    if backbone is None or scale == 1.0:
        groups = [{"params": list(model.parameters()), "lr": lr}]
    else:
        inside = {id(p) for p in backbone.parameters()}
        groups = [
            {"params": [p for p in model.parameters() if id(p) in inside], "lr": lr * scale},
            {"params": [p for p in model.parameters() if id(p) not in inside], "lr": lr},
        ]
    # one fused kernel over all parameters instead of a Python loop of a dozen small ops
    # per tensor: 8 of the demo's 27 ms bfloat16 CPU step (training/mixed_precision.py)
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point()
                for p in model.parameters())
    return torch.optim.AdamW(groups, lr=lr, weight_decay=config.optim.weight_decay,
                             fused=fused or None)


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(saved)``, each moment laid out like its parameter.

    Saved tensors come back contiguous, while a channels-last convolution's weight is not;
    the fused AdamW kernel pairs elements by memory position, so a moment in another layout
    would be added to the wrong weights (the resume tests caught it).
    """
    optimizer.load_state_dict(saved)
    for param, moments in optimizer.state.items():
        for name, value in moments.items():
            if isinstance(value, torch.Tensor) and value.shape == param.shape \
                    and value.stride() != param.stride():
                moments[name] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def cosine_factor(step: int, total_steps: int) -> float:
    """Cosine decay from 1 to 0 over ``total_steps`` (then 0): the multiplier of the lr."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Cosine decay to zero over the whole run, stepped per batch (None: constant lr).

    The factor is a closed form of (step, total), and only the step is saved, so a run
    extended with ``--resume --epochs N`` continues on the schedule of an N-epoch run: the
    learning rate moves to where that longer schedule is at this step, then decays to zero
    at the new end.
    """
    if config.optim.lr_schedule == "none":
        return None
    total_steps = max(1, config.optim.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer,
                                             lambda step: cosine_factor(step, total_steps))

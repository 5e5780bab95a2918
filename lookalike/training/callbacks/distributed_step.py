"""Several processes: the training step runs through DistributedDataParallel, which averages
the gradients over the ranks (lookalike/distributed.py explains why that average gives the
single-process gradient).

DDP fixes the set of trainable parameters when it wraps a module, so the wrapper is made
again whenever that set changes (``--freeze-backbone-epochs`` unfreezing the backbone).
"""

from __future__ import annotations

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lookalike.training.fit import Callback, TrainingState


class DistributedStep(Callback):
    def __init__(self) -> None:
        self.base: nn.Module | None = None  # what the step runs: the model, or its tail
        self.trainable: tuple[int, ...] = ()

    def on_epoch_start(self, state: TrainingState) -> None:
        if self.base is None:
            self.base = state.model if state.step_model is None else state.step_model
        trainable = tuple(id(p) for p in self.base.parameters() if p.requires_grad)
        if trainable != self.trainable or state.step_model is None:
            device_ids = [state.device.index] if state.device.type == "cuda" else None
            state.step_model = DistributedDataParallel(self.base, device_ids=device_ids)
            self.trainable = trainable

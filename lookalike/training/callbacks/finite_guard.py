"""Stop the run at the first non-finite loss, or when the weights become non-finite by the
end of an epoch, before anything of that epoch is validated or saved.

Checkpoints are committed only at the end of an epoch (or on Ctrl-C), so stopping here
keeps the last committed one, which the message names (or says that none was written yet).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from lookalike.errors import TrainingError
from lookalike.training.fit import Callback, StepResult, TrainingState


def non_finite_tensors(model: torch.nn.Module) -> list[str]:
    """Names of the parameters and buffers holding NaN or infinity."""
    return [name for name, tensor in model.state_dict().items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]


def kept_checkpoint(state: TrainingState, run_root: Path) -> str:
    """Which save survives a stop now: the last committed one, or none."""
    if state.committed:
        return f"the checkpoint saved at {state.committed} ({run_root / 'last'}) is kept"
    return "no checkpoint was written"


class NonFiniteGuard(Callback):
    def __init__(self, run_root: Path) -> None:
        self.run_root = run_root

    def on_batch_end(self, state: TrainingState, step: StepResult) -> None:
        if math.isfinite(step.loss):
            return
        raise TrainingError(f"loss became {step.loss} at epoch {state.epoch + 1}, batch "
                            f"{state.progress.batches_done}; training stopped and "
                            f"{kept_checkpoint(state, self.run_root)} (try a lower --lr)")

    def on_epoch_end(self, state: TrainingState) -> None:
        broken = non_finite_tensors(state.model)
        if broken:
            raise TrainingError(f"the weights became non-finite ({len(broken)} tensors, e.g. "
                                f"{broken[0]}) in epoch {state.epoch + 1}; nothing was saved "
                                f"and {kept_checkpoint(state, self.run_root)} (try a lower --lr)")

"""Stop the run at the first non-finite loss, before anything of that epoch is saved.

Checkpoints are committed only at the end of an epoch, so stopping here keeps the last
committed one, which the message names (or says that none was written yet).
"""

from __future__ import annotations

import math
from pathlib import Path

from lookalike.errors import TrainingError
from lookalike.training.fit import Callback, StepResult, TrainingState


class NonFiniteGuard(Callback):
    def __init__(self, run_root: Path) -> None:
        self.run_root = run_root

    def on_batch_end(self, state: TrainingState, step: StepResult) -> None:
        if math.isfinite(step.loss):
            return
        kept = (f"the checkpoint saved at {state.committed} ({self.run_root / 'last'}) is kept"
                if state.committed else "no checkpoint was written")
        raise TrainingError(f"loss became {step.loss} at epoch {state.epoch + 1}, batch "
                            f"{state.progress.batches_done}; training stopped and {kept} "
                            "(try a lower --lr)")

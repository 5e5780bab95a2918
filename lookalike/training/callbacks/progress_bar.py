"""One tqdm bar per epoch, showing the running loss and the share of active triplets."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from lookalike.training.fit import Callback, StepResult, TrainingState


class ProgressBar(Callback):
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def on_epoch_start(self, state: TrainingState) -> None:
        self.bar = tqdm(total=state.plan.strategy_for(state.epoch).batches_per_epoch,
                        initial=state.progress.batches_done,
                        desc=f"epoch {state.epoch + 1}/{state.epochs}",
                        disable=not self.enabled, leave=False, dynamic_ncols=True)

    def on_batch_end(self, state: TrainingState, step: StepResult) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{step.loss:.4f}", pos=f"{step.stats.fraction_positive:.3f}")

    def on_epoch_end(self, state: TrainingState) -> None:
        self.close()

    def on_interrupt(self, state: TrainingState) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

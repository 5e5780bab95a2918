"""Step the learning-rate schedule after every optimiser step (lookalike/training/optim.py)."""

from __future__ import annotations

from lookalike.training.fit import Callback, StepResult, TrainingState


class LearningRateSchedule(Callback):
    def on_batch_end(self, state: TrainingState, step: StepResult) -> None:
        if state.scheduler is not None:
            state.scheduler.step()

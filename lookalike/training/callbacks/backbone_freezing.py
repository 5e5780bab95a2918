"""Train only the embedding head for the first epochs (``--freeze-backbone-epochs``): a
fresh head on a pretrained backbone would otherwise send large gradients into it."""

from __future__ import annotations

from lookalike.training.fit import Callback, TrainingState


class BackboneFreezing(Callback):
    def __init__(self, frozen_epochs: int) -> None:
        self.frozen_epochs = frozen_epochs

    def on_epoch_start(self, state: TrainingState) -> None:
        state.model.freeze_backbone(state.epoch < self.frozen_epochs)  # type: ignore[operator]

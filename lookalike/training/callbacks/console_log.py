"""One line per epoch: training means, validation metrics and speed."""

from __future__ import annotations

from collections.abc import Callable

from lookalike.training.fit import Callback, TrainingState


class ConsoleLog(Callback):
    def __init__(self, log: Callable[[str], None], pairs: bool = False) -> None:
        self.log = log
        self.counted = "pos-pairs" if pairs else "pos-triplets"  # what fraction_positive counts

    def on_epoch_end(self, state: TrainingState) -> None:
        record = state.record
        self.log(
            f"epoch {record['epoch']}/{state.epochs}  loss {record['train_loss']:.4f}  "
            f"{self.counted} {record['fraction_positive']:.3f}  "
            f"d(a,p) {record['mean_positive_distance']:.3f}  "
            f"d(a,n) {record['mean_negative_distance']:.3f}  "
            f"val MAP@R {record['val_map_at_r']:.4f}  P@1 {record['val_precision_at_1']:.4f}  "
            f"{record['images_per_second']:.0f} img/s"
        )

"""Leave-one-out retrieval on the held-out split after every epoch, ranked by the run's own
``--distance`` (each process of a multi-process run embeds its share): the numbers that
pick ``best``. Its seconds are logged apart and not counted
as training time."""

from __future__ import annotations

import time

from lookalike.data import ImageDataset
from lookalike.evaluation import evaluate_embeddings
from lookalike.models.sharded_embed import embed_everywhere
from lookalike.training.fit import Callback, TrainingState


class Validation(Callback):
    def __init__(self, dataset: ImageDataset, distance: str, show_progress: bool = True,
                 batch_size: int = 512) -> None:
        self.dataset, self.distance = dataset, distance
        self.show_progress, self.batch_size = show_progress, batch_size

    def on_epoch_end(self, state: TrainingState) -> None:
        started = time.perf_counter()
        embeddings = embed_everywhere(state.model, self.dataset, batch_size=self.batch_size,
                                      device=state.device, progress=self.show_progress)
        metrics = evaluate_embeddings(embeddings, self.dataset.collection.labels,
                                      distance=self.distance)
        state.record.update(val_map_at_r=metrics.map_at_r,
                            val_precision_at_1=metrics.precision_at_1,
                            validation_seconds=time.perf_counter() - started)

"""``--feature-cache``: before the first epoch, run the model's frozen prefix once per view
of every training image (training/feature_cache.py), then let the steps train only the tail
on those features. Checkpoints, validation and pool mining keep using the whole model,
whose tail is the same modules. The building seconds count as training time (they replace
work the epochs would do) and appear as ``cache_seconds`` in the first epoch's metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from lookalike.data import ImageDataset
from lookalike.errors import ConfigError
from lookalike.models import Embedder
from lookalike.training.feature_cache import build_feature_cache
from lookalike.training.fit import Callback, TrainingState


def unchanged(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The step's augmentation on cached features: none (the views were augmented)."""
    return images


class FeatureCaching(Callback):
    """Args:
        dataset: the training items.
        blocks: backbone blocks in the trained tail (0: only the embedding head trains).
        views: cached views per item.  dtype: float16 or float32.
        folder: keep the cache as a file there (None: in memory unless very large).
        workers: processes decoding image files.
    """

    def __init__(self, dataset: ImageDataset, blocks: int, views: int, dtype: str, *,
                 folder: Path | None, workers: int, show_progress: bool,
                 log: Callable[[str], None]) -> None:
        self.dataset, self.blocks, self.views, self.dtype = dataset, blocks, views, dtype
        self.folder, self.workers = folder, workers
        self.show_progress, self.log = show_progress, log
        self.seconds: float | None = None

    def on_run_start(self, state: TrainingState) -> None:
        if not isinstance(state.model, Embedder):
            raise ConfigError("--feature-cache needs an Embedder to split into prefix and tail")
        started = time.perf_counter()
        prefix, tail = state.model.split(self.blocks)
        # the stream of "epoch -1": its own, and the same for a resumed run
        generator = torch.Generator().manual_seed((state.seed * 100_003 - 1) % 2**64)
        cache = build_feature_cache(prefix, self.dataset, state.augment, views=self.views,
                                    generator=generator, seed=state.seed, device=state.device,
                                    amp=state.amp, dtype=self.dtype, folder=self.folder,
                                    workers=self.workers, progress=self.show_progress,
                                    log=self.log)
        state.load_batches = cache.loader(state.generator)
        state.augment = unchanged
        state.step_model = tail
        self.seconds = time.perf_counter() - started
        state.elapsed += self.seconds

    def on_epoch_start(self, state: TrainingState) -> None:
        if self.seconds is not None:  # the first epoch of this process
            state.record["cache_seconds"] = self.seconds
            self.seconds = None

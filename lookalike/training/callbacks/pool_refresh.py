"""Mine the hard-example pools when the plan's pooled phase needs new ones, and hand them
to its sampler through ``set_pools`` (docs/design.md 2.1).

The first pools come from ``--mining-model`` (or the model in training, "self") after the
warm-up; every ``--refresh-every`` epochs the current model mines them again. The mining
seconds count as training time (``refresh_seconds`` in the metrics). Pools are saved in the
run folder under the epoch they serve (one file each: nothing to disagree), so a resumed
run reuses them instead of mining again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from lookalike.data import ImageDataset
from lookalike.mining.model import load_mining_model, mine_with_model
from lookalike.mining.pools import PoolConfig, Pools
from lookalike.training.config import PoolOptions
from lookalike.training.fit import Callback, TrainingState


class PoolRefresh(Callback):
    """Args:
        dataset: the training items the pools index.
        options: the run's pool options.  distance: the run's distance.
        one_shot: mine once after the warm-up (offline-hard), whatever ``refresh_every``.
        pools_path: where the pools mined for an epoch are kept for --resume (None: not
            kept, in the other processes of a multi-process run).
    """

    def __init__(self, dataset: ImageDataset, options: PoolOptions, distance: str, *,
                 one_shot: bool, pools_path: Callable[[int], Path] | None) -> None:
        self.dataset, self.options, self.distance = dataset, options, distance
        self.one_shot, self.pools_path = one_shot, pools_path
        self.pools_epoch: int | None = None

    def due_epoch(self, epoch: int) -> int:
        """The epoch whose pools serve ``epoch``: the latest refresh at or before it."""
        warmup, every = self.options.warmup_epochs, self.options.refresh_every
        if self.one_shot or every == 0:
            return warmup
        return warmup + (epoch - warmup) // every * every

    def on_epoch_start(self, state: TrainingState) -> None:
        sampler = state.plan.pooled_sampler()
        if sampler is None or state.epoch < self.options.warmup_epochs:
            return
        due = self.due_epoch(state.epoch)
        if self.pools_epoch == due:
            return
        started = time.perf_counter()
        pools = self.load_saved(due) or self.mine(due, state.model, state.device)
        sampler.set_pools(pools)
        self.pools_epoch = due
        state.record["refresh_seconds"] = time.perf_counter() - started

    def mine(self, epoch: int, model: torch.nn.Module, device: torch.device) -> Pools:
        """Pools from the mining model (first time, unless 'self') or the current model."""
        options = self.options
        mining_model = model
        if options.mining_model != "self" and epoch == options.warmup_epochs:
            mining_model = load_mining_model(options.mining_model,
                                             in_channels=self.dataset.channels,
                                             input_size=options.mining_input_size)
        pool_config = PoolConfig(hard_positives=options.hard_positives,
                                 hard_negatives=options.hard_negatives,
                                 positive_band=options.positive_band,
                                 negative_band=options.negative_band,
                                 skip_hardest=options.skip_hardest, distance=self.distance)
        mined = mine_with_model(mining_model, self.dataset, self.dataset.collection.labels,
                                pool_config, device=device, progress=False)
        model.train()
        if self.pools_path is not None:
            path = self.pools_path(epoch)
            mined.pools.save(path)
            for older in path.parent.glob("e*.npz"):  # a resume never needs older ones
                if older != path:
                    older.unlink(missing_ok=True)
        return mined.pools

    def load_saved(self, epoch: int) -> Pools | None:
        """On resume, the pools mined for ``epoch`` before the interruption, if saved."""
        if self.pools_path is None or not self.pools_path(epoch).is_file():
            return None
        return Pools.load(self.pools_path(epoch))

"""A mining strategy = the loss that selects triplets + the sampler that builds batches.

Online strategies (batch-all, batch-hard, semi-hard) draw P x K class-balanced batches and
let the loss choose triplets inside each batch. Offline draws a fixed list of random
(anchor, positive, negative) triplets once, before training. The pooled strategies mine
every anchor's hard positives and negatives over the whole training set (DESIGN 2.1):
hybrid injects them into P x K batches and refreshes them every R epochs; offline-hard
turns them once into a fixed triplet list. With ``--loss contrastive`` (DESIGN 2.2) the
loss trains on pairs chosen inside P x K batches, in the --pair-ratio of positives to
negatives, whatever the online --mining. Every epoch has the same number of batches, so
strategies compare at equal cost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lookalike.data import ImageDataset
from lookalike.files import write_json
from lookalike.losses import ContrastiveLoss, TripletLoss
from lookalike.mining.model import load_mining_model, mine_with_model
from lookalike.mining.offline import OfflineTripletSampler, random_triplets
from lookalike.mining.pools import PoolConfig, Pools
from lookalike.sampling import PKSampler
from lookalike.sampling.injecting import HardPositiveBatchSampler, draw_from_pools
from lookalike.training.config import POOLED_STRATEGIES, TrainConfig, parse_pair_ratio
from lookalike.types import Triplets


@dataclass
class Strategy:
    """What the trainer needs from a strategy: a loss, batches per epoch, an epoch hook."""

    loss: torch.nn.Module
    sampler: Any  # PKSampler-like: set_epoch(), __iter__ of index lists, __len__
    batches_per_epoch: int

    def batches(self, epoch: int) -> Iterable[Sequence[int]]:
        """The epoch's batches, reseeded with seed + epoch so a resumed epoch is identical."""
        self.sampler.set_epoch(epoch)
        batches: Iterator[Sequence[int]] = iter(self.sampler)
        return islice(batches, self.batches_per_epoch)

    def start_epoch(self, epoch: int, *, model: torch.nn.Module, device: torch.device) -> float:
        """Hook for strategies that refresh state with the current model; returns seconds."""
        return 0.0


def triplet_loss(config: TrainConfig, selection: str) -> TripletLoss:
    return TripletLoss(selection=selection, margin=config.margin, soft=config.soft_margin,
                       distance=config.distance)


def contrastive_loss(config: TrainConfig) -> ContrastiveLoss:
    """Pairs in the configured ratio; random negatives from the trainer's seeded global RNG."""
    return ContrastiveLoss(neg_margin=config.contrastive_margin, distance=config.distance,
                           ratio=parse_pair_ratio(config.pair_ratio))


def pool_triplets(pools: Pools, seed: int) -> Triplets:
    """One (anchor, pooled positive, pooled negative) triplet per anchor with both pools."""
    generator = torch.Generator().manual_seed(seed)
    positive = draw_from_pools(pools.positive_index, generator)
    negative = draw_from_pools(pools.negative_index, generator)
    anchor = np.flatnonzero((positive >= 0) & (negative >= 0))
    as_tensor = torch.from_numpy
    return Triplets(as_tensor(anchor), as_tensor(positive[anchor]), as_tensor(negative[anchor]))


@dataclass
class PooledStrategy(Strategy):
    """Hybrid and offline-hard: plain online warm-up, then batches built from mined pools."""

    config: TrainConfig = field(default_factory=TrainConfig)
    dataset: ImageDataset | None = None
    run_dir: Path | None = None
    pools: Pools | None = None
    pools_epoch: int | None = None

    @property
    def labels(self) -> np.ndarray:
        assert self.dataset is not None
        return self.dataset.collection.labels

    def due_epoch(self, epoch: int) -> int:
        """The epoch whose pools serve ``epoch``: the latest refresh at or before it."""
        warmup, every = self.config.warmup_epochs, self.config.refresh_every
        if self.config.mining == "offline-hard" or every == 0:
            return warmup
        return warmup + (epoch - warmup) // every * every

    def start_epoch(self, epoch: int, *, model: torch.nn.Module, device: torch.device) -> float:
        config = self.config
        if epoch < config.warmup_epochs:
            self.loss = triplet_loss(config, config.warmup_selection)
            self.sampler = PKSampler(self.labels, config.classes_per_batch,
                                     config.items_per_class, seed=config.seed,
                                     batches_per_epoch=self.batches_per_epoch)
            return 0.0
        due = self.due_epoch(epoch)
        if self.pools is not None and self.pools_epoch == due:
            return 0.0
        started = time.perf_counter()
        self.pools = self.load_saved_pools(due) or self.mine(due, model, device)
        self.pools_epoch = due
        self.use_pools(self.pools)
        return time.perf_counter() - started

    def mine(self, epoch: int, model: torch.nn.Module, device: torch.device) -> Pools:
        """Pools from the mining model (first time, unless 'self') or the current model."""
        config = self.config
        assert self.dataset is not None
        mining_model = model
        if config.mining_model != "self" and epoch == config.warmup_epochs:
            mining_model = load_mining_model(config.mining_model,
                                             in_channels=self.dataset.channels,
                                             input_size=config.mining_input_size)
        pool_config = PoolConfig(k_pos=config.hard_positives, k_neg=config.hard_negatives,
                                 skip_pos=config.positive_band, skip_neg=config.negative_band,
                                 skip_pos_min=config.skip_hardest,
                                 skip_neg_min=config.skip_hardest, metric=config.distance)
        mined = mine_with_model(mining_model, self.dataset, self.labels, pool_config,
                                device=device, progress=False)
        model.train()
        if self.run_dir is not None:
            mined.pools.save(self.run_dir / "pools.npz")
            write_json(self.run_dir / "pools.json", {
                "epoch": epoch, "embed_seconds": mined.embed_seconds,
                "mine_seconds": mined.mine_seconds,
            })
        return mined.pools

    def load_saved_pools(self, epoch: int) -> Pools | None:
        """On resume, the pools mined for ``epoch`` before the interruption, if saved."""
        if self.run_dir is None or not (self.run_dir / "pools.json").exists():
            return None
        meta = json.loads((self.run_dir / "pools.json").read_text(encoding="utf-8"))
        return Pools.load(self.run_dir / "pools.npz") if meta.get("epoch") == epoch else None

    def use_pools(self, pools: Pools) -> None:
        config = self.config
        if config.mining == "offline-hard":
            self.loss = triplet_loss(config, "offline")
            self.sampler = OfflineTripletSampler(
                pool_triplets(pools, config.seed), max(1, config.batch_size // 3),
                seed=config.seed)
            return
        self.loss = triplet_loss(config, config.hybrid_selection)
        anchors_per_class = config.items_per_class // (2 + config.inject_negatives)
        self.sampler = HardPositiveBatchSampler(
            self.labels, pools.positive_index, pools.negative_index,
            config.classes_per_batch, anchors_per_class,
            inject_negatives=config.inject_negatives, seed=config.seed,
            batches_per_epoch=self.batches_per_epoch)


def build_strategy(config: TrainConfig, dataset: ImageDataset,
                   run_dir: Path | None = None) -> Strategy:
    """The loss and sampler named by ``config.loss`` and ``config.mining``."""
    labels = dataset.collection.labels
    batches_per_epoch = config.batches_per_epoch or max(1, len(labels) // config.batch_size)
    contrastive = config.loss == "contrastive"  # pairs inside P x K batches; no --mining
    if config.mining in POOLED_STRATEGIES and not contrastive:
        return PooledStrategy(loss=triplet_loss(config, config.warmup_selection),
                              sampler=None, batches_per_epoch=batches_per_epoch,
                              config=config, dataset=dataset, run_dir=run_dir)
    if config.mining == "offline" and not contrastive:
        triplets = random_triplets(labels, per_anchor=1, seed=config.seed)
        sampler: Any = OfflineTripletSampler(
            triplets, triplets_per_batch=max(1, config.batch_size // 3), seed=config.seed
        )
    else:
        sampler = PKSampler(labels, config.classes_per_batch, config.items_per_class,
                            seed=config.seed, batches_per_epoch=batches_per_epoch)
    loss = contrastive_loss(config) if contrastive else triplet_loss(config, config.mining)
    return Strategy(loss=loss, sampler=sampler,
                    batches_per_epoch=min(batches_per_epoch, len(sampler)))

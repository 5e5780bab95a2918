"""The typed configuration of one training run.

One dataclass holds every option of ``lookalike train``; the command line fills it, the run
directory stores it as ``config.json``, and ``--resume`` reads it back, so a resumed run
cannot silently change its own settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lookalike.distances import METRICS
from lookalike.errors import ConfigError

ONLINE_STRATEGIES = ("batch-all", "batch-hard", "semi-hard")
POOLED_STRATEGIES = ("hybrid", "offline-hard")
STRATEGIES = (*ONLINE_STRATEGIES, "offline", *POOLED_STRATEGIES)
LOSSES = ("triplet", "contrastive")
SPLITS = ("items", "classes")


def parse_pair_ratio(text: str) -> tuple[int, int]:
    """"1:3" -> (1, 3): positive and negative pairs in that proportion."""
    try:
        positives, negatives = (int(part) for part in str(text).split(":"))
    except ValueError:
        raise ConfigError(f"--pair-ratio must look like 1:3 (positives:negatives), "
                          f"got {text!r}") from None
    if positives < 1 or negatives < 1:
        raise ConfigError(f"--pair-ratio needs at least one of each, got {text!r}")
    return positives, negatives


@dataclass
class TrainConfig:
    """Every knob of a training run, with defaults that train Fashion-MNIST well on a CPU."""

    data: str = "fashion-mnist"
    mining: str = "semi-hard"  # the best on bench/strategies.py (README)
    epochs: int = 10
    # "items": validate on a held-out share of the items; "classes": the unseen-class
    # protocol of metric-learning benchmarks (train on half the classes, validate on the rest)
    split: str = "items"
    # model
    backbone: str = "small-cnn"
    embedding_dim: int = 64
    input_size: int = 28
    pretrained: bool = True  # ImageNet weights for backbones that have them
    freeze_backbone_epochs: int = 0  # train only the head for this many first epochs
    backbone_lr_scale: float = 1.0  # backbone learning rate = lr * this (e.g. 0.1 pretrained)
    # loss: triplet (with --mining) or contrastive (siamese pairs, DESIGN 2.2)
    loss: str = "triplet"
    pair_ratio: str = "1:3"  # contrastive: positive to negative pairs per batch
    contrastive_margin: float = 0.5  # negatives are pushed beyond this distance
    # batches: P classes x K items (offline: P * K // 3 triplets per batch)
    classes_per_batch: int = 8
    items_per_class: int = 16
    # loss
    margin: float = 0.2
    soft_margin: bool = False
    distance: str = "euclidean"
    # hybrid / offline-hard: offline pools of hard positives and negatives (DESIGN 2.1)
    # Defaults measured on Fashion-MNIST (bench/strategies.py, README): batch-hard over injected
    # batches collapses, the farthest positives / nearest negatives are mostly look-alikes of
    # the other class, and refreshing every 1 or 3 epochs scored the same as mining once.
    hybrid_selection: str = "semi-hard"  # in-batch selection over the injected batches
    hard_positives: int = 5  # k_pos kept per anchor
    hard_negatives: int = 5  # k_neg kept per anchor
    skip_hardest: int = 0  # skip this many of the very hardest (label noise, duplicates)
    positive_band: float = 0.2  # skip this share of each anchor's farthest positives
    negative_band: float = 0.05  # skip this share of each anchor's nearest negatives
    inject_negatives: bool = True  # inject a pooled hard negative too, not only a positive
    refresh_every: int = 0  # epochs between pool rebuilds with the current model (0: never)
    warmup_epochs: int = 1  # epochs of plain online mining before the first pools
    warmup_selection: str = "semi-hard"
    mining_model: str = "self"  # "self" (the model in training), efficientnet-lite0, a checkpoint
    mining_input_size: int = 64  # image size for a pretrained mining model
    # optimisation
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    # augmentation
    crop_padding: int = 2
    flip: bool = True
    # data handling
    val_fraction: float = 0.1
    val_split: str | None = None  # validate on this split of the data (e.g. "test") instead
    train_limit: int | None = None
    val_limit: int | None = None
    batches_per_epoch: int | None = None
    skip_bad: bool = False
    workers: int = 0  # DataLoader processes decoding image files (0: in the main process)
    cache_images: bool = False  # decode and resize image files once, keep them as arrays
    # machine
    seed: int = 0
    threads: int | None = None
    device: str = "auto"
    amp: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.classes_per_batch * self.items_per_class

    def validate(self) -> TrainConfig:
        """Reject impossible values with a one-line message naming the option."""
        if self.mining not in STRATEGIES:
            choices = ", ".join(STRATEGIES)
            raise ConfigError(f"unknown --mining {self.mining!r}; choose one of {choices}")
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown --loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.split not in SPLITS:
            raise ConfigError(f"unknown --split {self.split!r}; choose one of {', '.join(SPLITS)}")
        parse_pair_ratio(self.pair_ratio)
        if self.loss == "contrastive" and self.mining in POOLED_STRATEGIES:
            raise ConfigError(f"--mining {self.mining} mines triplet pools and cannot feed "
                              f"--loss contrastive (in-batch pairs); use --loss triplet or "
                              f"an online --mining")
        if self.contrastive_margin <= 0:
            raise ConfigError(f"--contrastive-margin must be positive, got "
                              f"{self.contrastive_margin}")
        if self.freeze_backbone_epochs < 0 or self.workers < 0:
            raise ConfigError("--freeze-backbone-epochs and --workers must be >= 0")
        if self.backbone_lr_scale < 0:
            raise ConfigError(f"--backbone-lr-scale must be >= 0, got {self.backbone_lr_scale}")
        if self.distance not in METRICS:
            choices = ", ".join(METRICS)
            raise ConfigError(f"unknown --distance {self.distance!r}; choose one of {choices}")
        if self.lr_schedule not in ("cosine", "none"):
            raise ConfigError(f"unknown --lr-schedule {self.lr_schedule!r}; choose cosine or none")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"unknown --device {self.device!r}; choose auto, cpu or cuda")
        positive = {
            "epochs": self.epochs, "embedding_dim": self.embedding_dim,
            "input_size": self.input_size, "classes_per_batch": self.classes_per_batch,
            "items_per_class": self.items_per_class, "lr": self.lr,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")
        for option in ("hybrid_selection", "warmup_selection"):
            if getattr(self, option) not in ONLINE_STRATEGIES:
                choices = ", ".join(ONLINE_STRATEGIES)
                raise ConfigError(f"--{option.replace('_', '-')} must be one of {choices}")
        for option in ("hard_positives", "hard_negatives"):
            if getattr(self, option) < 1:
                raise ConfigError(f"--{option.replace('_', '-')} must be at least 1")
        for option in ("positive_band", "negative_band"):
            if not 0.0 <= getattr(self, option) < 1.0:
                raise ConfigError(f"--{option.replace('_', '-')} must be in [0, 1)")
        for option in ("skip_hardest", "refresh_every", "warmup_epochs"):
            if getattr(self, option) < 0:
                raise ConfigError(f"--{option.replace('_', '-')} must be >= 0")
        if self.mining == "hybrid" and self.items_per_class < 2 + self.inject_negatives:
            raise ConfigError("--mining hybrid needs --items-per-class >= 3: each anchor's "
                              "slot is shared with its injected positive (and negative)")
        if self.classes_per_batch < 2:
            raise ConfigError("--classes-per-batch must be at least 2: triplets need negatives")
        if self.items_per_class < 2:
            raise ConfigError("--items-per-class must be at least 2: triplets need positives")
        if self.margin < 0:
            raise ConfigError(f"--margin must be >= 0, got {self.margin}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be between 0 and 1, got {self.val_fraction}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a stored config, refusing keys this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) in config: {', '.join(unknown)}")
        return cls(**values).validate()

"""The typed configuration of one training run, in parts named like the ``--help`` groups.

``TrainConfig`` is composed of ``data``, ``model``, ``objective`` (loss and mining),
``pools`` (hybrid / offline-hard), ``optim`` and ``machine`` parts. Every field is named
like its flag (``--hard-positives`` is ``pools.hard_positives``; the one exception is
``--data``, stored as ``data.source``), so the command line fills a config with
:meth:`TrainConfig.from_options` and nothing is renamed on the way. The config is validated
once, saved once with the run (``config.json``), and ``--resume`` reads it back: a resumed
run cannot silently change its own settings (:func:`resume_changes`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lookalike.distances import DISTANCES
from lookalike.errors import ConfigError

SPLITS = ("items", "classes")
LR_SCHEDULES = ("cosine", "none")
HYBRID_BATCHES = ("items", "classes")
# What --resume may change: how long the run goes on and the machine it runs on. Anything
# else would make the resumed run a different run from the one its folder describes.
RESUMABLE = ("epochs", "threads", "workers", "device")


def flag(name: str) -> str:
    """``hard_positives`` -> ``--hard-positives``; ``source`` -> ``--data``."""
    return "--data" if name == "source" else "--" + name.replace("_", "-")


def check_number(name: str, value: float | int | None, low: float, high: float = math.inf, *,
                 low_open: bool = False, optional: bool = False) -> None:
    """Refuse NaN, infinities and values outside [low, high] (``(low, high]`` with
    ``low_open``), naming the flag and the accepted range."""
    if value is None and optional:
        return
    def shown(bound: float) -> str:
        return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"

    bracket = "(" if low_open else "["
    upper = "inf)" if math.isinf(high) else f"{shown(high)}]"
    accepted = f"{bracket}{shown(low)}, {upper}"
    if value is None or isinstance(value, bool) or not math.isfinite(value) or value < low \
            or value > high or (low_open and value == low):
        raise ConfigError(f"{flag(name)} must be a number in {accepted}, got {value}")


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
class DataOptions:
    """Where the images come from, what is held out, and how batches are augmented."""

    source: str = "fashion-mnist"  # --data
    # "items": validate on a held-out share of the items; "classes": the unseen-class
    # protocol of metric-learning benchmarks (train on half the classes, validate on the rest)
    split: str = "items"
    val_fraction: float = 0.1
    val_split: str | None = None  # validate on this split of the data (e.g. "test") instead
    train_limit: int | None = None
    val_limit: int | None = None
    skip_bad: bool = False
    workers: int = 0  # processes decoding image files (0: in the main process)
    cache_images: bool = False  # decode and resize image files once, keep them as arrays
    # --augment: digits (pad-and-crop shift + flip), photo (random resized crop + colour
    # jitter + flip), none, or auto: photo for pretrained backbones, digits otherwise
    augment: str = "auto"
    crop_padding: int = 2  # digits: largest random shift in pixels
    flip: bool = True  # digits and photo: random mirror images
    crop_scale: float = 0.35  # photo: smallest area share of the random resized crop
    color_jitter: float = 0.3  # photo: brightness/contrast/saturation factors in [1-j, 1+j]

    def validate(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"unknown --split {self.split!r}; choose one of {', '.join(SPLITS)}")
        check_number("val_fraction", self.val_fraction, 0.0, 1.0, low_open=True)
        if self.val_fraction == 1.0:
            raise ConfigError("--val-fraction must be below 1: something must be left to train")
        check_number("train_limit", self.train_limit, 1, optional=True)
        check_number("val_limit", self.val_limit, 1, optional=True)
        check_number("workers", self.workers, 0, 256)
        check_number("crop_padding", self.crop_padding, 0, 1024)
        from lookalike.data.augment import AUGMENTATIONS

        if self.augment != "auto" and self.augment not in AUGMENTATIONS:
            raise ConfigError(f"unknown --augment {self.augment!r}; choose one of auto, "
                              f"{', '.join(AUGMENTATIONS.names())}")
        check_number("crop_scale", self.crop_scale, 0.0, 1.0, low_open=True)
        check_number("color_jitter", self.color_jitter, 0.0, 1.0)
        if self.color_jitter == 1.0:
            raise ConfigError("--color-jitter must be below 1: a factor of 0 blanks the image")


@dataclass
class ModelOptions:
    """The network: backbone, embedding size, input size, what is trained when."""

    backbone: str = "small-cnn"
    embedding_dim: int = 64
    input_size: int = 28
    pretrained: bool = True  # ImageNet weights for backbones that have them
    freeze_backbone_epochs: int = 0  # train only the head for this many first epochs
    backbone_lr_scale: float = 1.0  # backbone learning rate = lr * this (e.g. 0.1 pretrained)
    pooling: str = "avg"  # the backbone's global pooling: avg or gem (learnable exponent)
    train_blocks: int | None = None  # train only the backbone's last N blocks (None: all)
    # train on the frozen part's outputs, computed once per view (training/feature_cache.py)
    feature_cache: bool = False
    cached_views: int = 4  # views cached per training image (view 0: the image unaugmented)
    feature_cache_dtype: str = "float16"  # or float32
    # inference embeds each image and its mirror image and averages (models/config.py)
    mirror_average: bool = False

    def validate(self) -> None:
        check_number("embedding_dim", self.embedding_dim, 1, 65536)
        check_number("input_size", self.input_size, 8, 4096)
        check_number("freeze_backbone_epochs", self.freeze_backbone_epochs, 0)
        check_number("backbone_lr_scale", self.backbone_lr_scale, 0.0)
        check_number("train_blocks", self.train_blocks, 0, 10_000, optional=True)
        check_number("cached_views", self.cached_views, 1, 1024)
        if self.feature_cache_dtype not in ("float16", "float32"):
            raise ConfigError(f"--feature-cache-dtype must be float16 or float32, got "
                              f"{self.feature_cache_dtype!r}")
        from lookalike.models.gem import POOLINGS

        if self.pooling not in POOLINGS:
            raise ConfigError(f"unknown --pooling {self.pooling!r}; choose one of "
                              f"{', '.join(POOLINGS)}")


@dataclass
class ObjectiveOptions:
    """The loss, how triplets (or pairs) are chosen, and the P x K make-up of a batch."""

    loss: str = "triplet"  # or contrastive (siamese pairs, docs/design.md 2.2)
    mining: str = "semi-hard"  # the best on bench/strategies.py (README)
    margin: float = 0.2
    soft_margin: bool = False
    distance: str = "euclidean"
    pair_ratio: str = "1:3"  # contrastive: positive to negative pairs per batch
    contrastive_margin: float = 0.5  # negatives are pushed beyond this distance
    # P and K; None: fitted to the training labels when the plan is built (K = the median
    # class size in [2, 16], P = 128 // K; 8 x 16 on Fashion-MNIST; sampling/batch_shape.py).
    # Offline trains on P * K // 3 triplets per batch.
    classes_per_batch: int | None = None
    items_per_class: int | None = None

    def validate(self) -> None:
        from lookalike.losses.registry import LOSSES
        from lookalike.training.strategy import mining_choices

        LOSSES.get(self.loss)
        if self.mining not in mining_choices():
            raise ConfigError(f"unknown --mining {self.mining!r}; choose one of "
                              f"{', '.join(mining_choices())}")
        if self.distance not in DISTANCES:
            raise ConfigError(f"unknown --distance {self.distance!r}; choose one of "
                              f"{', '.join(DISTANCES.names())}")
        check_number("margin", self.margin, 0.0)
        check_number("contrastive_margin", self.contrastive_margin, 0.0, low_open=True)
        parse_pair_ratio(self.pair_ratio)
        check_number("classes_per_batch", self.classes_per_batch, 2, 1_000_000, optional=True)
        check_number("items_per_class", self.items_per_class, 2, 1_000_000, optional=True)


@dataclass
class PoolOptions:
    """Hybrid / offline-hard: offline pools of hard positives and negatives (docs/design.md
    2.1). Defaults measured on Fashion-MNIST (bench/strategies.py, README): batch-hard over
    injected batches collapses, the farthest positives / nearest negatives are mostly
    look-alikes of the other class, and refreshing every 1 or 3 epochs scored the same as
    mining once."""

    hybrid_selection: str = "semi-hard"  # in-batch selection over the injected batches
    # "items": P x K anchors plus their injected pooled items; "classes": a seed class and
    # its nearest classes by the pools, K items each (docs/design.md 2.4)
    hybrid_batches: str = "items"
    hard_positives: int = 5  # kept per anchor
    hard_negatives: int = 5
    skip_hardest: int = 0  # skip this many of the very hardest (label noise, duplicates)
    positive_band: float = 0.2  # skip this share of each anchor's farthest positives
    negative_band: float = 0.05  # skip this share of each anchor's nearest negatives
    inject_negatives: bool = True  # inject a pooled hard negative too, not only a positive
    refresh_every: int = 0  # epochs between pool rebuilds with the current model (0: never)
    warmup_epochs: int = 1  # epochs of plain online mining before the first pools
    warmup_selection: str = "semi-hard"
    mining_model: str = "self"  # "self" (the model in training), efficientnet-lite0, a checkpoint
    mining_input_size: int = 64  # image size for a pretrained mining model

    def validate(self) -> None:
        from lookalike.mining.online import online_selections

        for option in ("hybrid_selection", "warmup_selection"):
            if getattr(self, option) not in online_selections():
                choices = ", ".join(online_selections())
                raise ConfigError(f"{flag(option)} must be one of {choices}, got "
                                  f"{getattr(self, option)!r}")
        if self.hybrid_batches not in HYBRID_BATCHES:
            raise ConfigError(f"unknown --hybrid-batches {self.hybrid_batches!r}; choose one "
                              f"of {', '.join(HYBRID_BATCHES)}")
        check_number("hard_positives", self.hard_positives, 1, 10_000)
        check_number("hard_negatives", self.hard_negatives, 1, 10_000)
        check_number("skip_hardest", self.skip_hardest, 0, 10_000)
        for option in ("positive_band", "negative_band"):
            check_number(option, getattr(self, option), 0.0, 1.0)
            if getattr(self, option) == 1.0:
                raise ConfigError(f"{flag(option)} must be below 1: it would skip every item")
        check_number("refresh_every", self.refresh_every, 0)
        check_number("warmup_epochs", self.warmup_epochs, 0)
        check_number("mining_input_size", self.mining_input_size, 8, 4096)


@dataclass
class OptimOptions:
    """How long and how fast: epochs, batches per epoch, learning rate and its schedule."""

    epochs: int = 10
    batches_per_epoch: int | None = None  # default: training items // (P * K)
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"

    def validate(self) -> None:
        check_number("epochs", self.epochs, 1, 1_000_000)
        check_number("batches_per_epoch", self.batches_per_epoch, 1, optional=True)
        check_number("lr", self.lr, 0.0, 10.0, low_open=True)
        check_number("weight_decay", self.weight_decay, 0.0, 10.0)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"unknown --lr-schedule {self.lr_schedule!r}; choose one of "
                              f"{', '.join(LR_SCHEDULES)}")


@dataclass
class MachineOptions:
    """Where and how reproducibly it runs."""

    seed: int = 0
    threads: int | None = None  # CPU threads for torch (None: all cores)
    device: str = "auto"
    amp: bool = False

    def validate(self) -> None:
        check_number("seed", self.seed, 0, 2**63 - 1)
        check_number("threads", self.threads, 1, 4096, optional=True)
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"unknown --device {self.device!r}; choose auto, cpu or cuda")


PARTS: dict[str, type] = {
    "data": DataOptions, "model": ModelOptions, "objective": ObjectiveOptions,
    "pools": PoolOptions, "optim": OptimOptions, "machine": MachineOptions,
}
# flat option name -> the part that holds it (each name is in exactly one part)
OPTION_PART: dict[str, str] = {
    f.name: part for part, cls in PARTS.items() for f in dataclasses.fields(cls)
}


@dataclass
class TrainConfig:
    """Every knob of a training run, in parts; defaults train Fashion-MNIST well on a CPU."""

    data: DataOptions = field(default_factory=DataOptions)
    model: ModelOptions = field(default_factory=ModelOptions)
    objective: ObjectiveOptions = field(default_factory=ObjectiveOptions)
    pools: PoolOptions = field(default_factory=PoolOptions)
    optim: OptimOptions = field(default_factory=OptimOptions)
    machine: MachineOptions = field(default_factory=MachineOptions)

    @classmethod
    def from_options(cls, **options: Any) -> TrainConfig:
        """A config from flat options named like the flags (``hard_positives=3``)."""
        return cls().with_options(**options)

    def with_options(self, **options: Any) -> TrainConfig:
        """A copy with the flat ``options`` changed; unknown names are refused."""
        unknown = sorted(set(options) - set(OPTION_PART))
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
        parts = {name: getattr(self, name) for name in PARTS}
        for name in PARTS:
            changes = {k: v for k, v in options.items() if OPTION_PART[k] == name}
            if changes:
                parts[name] = dataclasses.replace(parts[name], **changes)
        return TrainConfig(**parts)

    def options(self) -> dict[str, Any]:
        """The flat ``{option: value}`` view (what ``--help`` lists)."""
        return {k: v for name in PARTS for k, v in dataclasses.asdict(getattr(self, name)).items()}

    def validate(self) -> TrainConfig:
        """Reject impossible values and combinations with one line naming the option."""
        for name in PARTS:
            getattr(self, name).validate()
        objective = self.objective
        if objective.loss != "triplet" and objective.mining in ("hybrid", "offline-hard"):
            raise ConfigError(f"--mining {objective.mining} mines triplet pools and cannot feed "
                              f"--loss {objective.loss}; use --loss triplet or an online --mining")
        model = self.model
        if model.feature_cache and model.train_blocks is None \
                and model.freeze_backbone_epochs < self.optim.epochs:
            raise ConfigError("--feature-cache needs a part of the backbone frozen for the whole "
                              "run: --train-blocks N, or --freeze-backbone-epochs >= --epochs")
        if model.mirror_average and not self.data.flip:
            raise ConfigError("--mirror-average embeds mirror images alike, but flips are off "
                              "(--no-flip, or the pretrained-backbone recipe's default), which "
                              "says they differ; give --flip too, or leave it off")
        needed = 2 + self.pools.inject_negatives
        if objective.mining == "hybrid" and self.pools.hybrid_batches == "items" \
                and objective.items_per_class is not None and objective.items_per_class < needed:
            raise ConfigError(f"--mining hybrid needs --items-per-class >= {needed}: each "
                              "anchor's slot is shared with its injected positive (and negative)")
        return self

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{"data": {...}, "model": {...}, ...}``, as config.json stores it."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in PARTS}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Read a stored config: the parts, or the flat layout of runs made before them."""
        if all(isinstance(values.get(name), Mapping) for name in PARTS):
            unknown = sorted(set(values) - set(PARTS))
            if unknown:
                raise ConfigError(f"unknown part(s) in training config: {', '.join(unknown)}")
            flat = {k: v for name in PARTS for k, v in values[name].items()}
        else:  # before the parts: one flat dict whose 'data' was the source
            flat = {("source" if k == "data" else k): v for k, v in values.items()
                    if not (k == "extra" and not v)}
        # runs saved before --augment trained with the pad-and-crop shift: resume them so
        flat.setdefault("augment", "digits")
        return cls.from_options(**flat).validate()


def resume_changes(saved: TrainConfig, given: Mapping[str, Any]) -> dict[str, Any]:
    """The options given with ``--resume`` that change the run: the ones in RESUMABLE.

    A given option equal to the saved one is fine (repeating the original command works);
    one that differs and is not resumable is refused, naming it and both values.
    """
    current = saved.options()
    changes: dict[str, Any] = {}
    for name, value in given.items():
        if name not in current:
            raise ConfigError(f"unknown training option {name!r}")
        if value == current[name]:
            continue
        if name not in RESUMABLE:
            allowed = ", ".join(flag(n) for n in RESUMABLE)
            raise ConfigError(f"--resume: {flag(name)} {value} conflicts with the run's "
                              f"{current[name]}; a resumed run may only change {allowed}")
        changes[name] = value
    return changes

"""The training recipe for a pretrained backbone, chosen by measurement.

``lookalike train --data FOLDER --split classes --backbone efficientnet-lite0 --out RUN``
used to train at the small CNN's 28 px input with its 64-d head and learning rates, and
ended far below the frozen ImageNet features it started from (docs/design.md 2.4). With a
pretrained backbone and no other option, this recipe fills in what bench/photos.py measured
best on the icon-themes collection (README, "Photos and drawings"): 128 px input, a 128-d
head, the whole backbone fine-tuned at the head's learning rate, photo augmentation without
flips, images decoded once into the cache, and as many epochs as fit about ten CPU-minutes
(a fixed image budget, so a run does not depend on the machine's speed). Every option the
user gives wins, and :meth:`Recipe.describe` says what was filled in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lookalike.models.factory import pretrained_backbones
from lookalike.training.config import TrainConfig, flag
from lookalike.training.data import count_training_items

# What the measurement picked (bench/photos.py, README): option -> (value, why)
PRETRAINED_RECIPE: dict[str, tuple[Any, str]] = {
    "input_size": (128, "pretrained features need detail: 28 px loses it"),
    "embedding_dim": (128, "room for many classes"),
    "backbone_lr_scale": (1.0, "fine-tuning the whole backbone at the head's rate measured "
                          "best (0.1 and 0.3 learnt too slowly)"),
    "augment": ("photo", "random resized crop + colour jitter"),
    "flip": (False, "mirror images can be other classes (arrows, text); --flip to allow"),
    "cache_images": (True, "decode and resize every image once, not every epoch"),
}
# Training images per run (epochs x training items): about ten CPU-minutes of EfficientNet-
# Lite0 at 128 px on 2 cores, validation included (about 90 training images/s there).
IMAGE_BUDGET = 40_000
MIN_EPOCHS, MAX_EPOCHS = 3, 30


@dataclass(frozen=True)
class Recipe:
    """The options a recipe adds to the user's (``options``) and one reason per option."""

    options: dict[str, Any]
    reasons: dict[str, str]

    def describe(self, backbone: str, train_items: int) -> str:
        """One log line: what was picked for this backbone and data, and how to override."""
        if not self.options:
            return ""
        picked = " ".join(f"{flag(name)} {_shown(value)}" if not isinstance(value, bool)
                          else flag(name) if value else f"--no-{flag(name)[2:]}"
                          for name, value in self.options.items())
        return (f"recipe for a pretrained {backbone} on {train_items:,} training images: "
                f"{picked} (any of these flags overrides it; README 'Photos and drawings')")


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def fitted_epochs(train_items: int) -> int:
    """Epochs that spend :data:`IMAGE_BUDGET` training images, within [3, 30]."""
    return max(MIN_EPOCHS, min(MAX_EPOCHS, round(IMAGE_BUDGET / max(1, train_items))))


def applies(given: Mapping[str, Any]) -> bool:
    """A recipe is filled in for a backbone with ImageNet weights that are used."""
    return given.get("backbone") in pretrained_backbones() and given.get("pretrained", True)


def pretrained_recipe(given: Mapping[str, Any], train_items: int) -> Recipe:
    """The recipe's options that the user did not give, for ``train_items`` images."""
    options: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    for name, (value, why) in PRETRAINED_RECIPE.items():
        if name not in given:
            options[name], reasons[name] = value, why
    if "epochs" not in given:
        options["epochs"] = fitted_epochs(train_items)
        reasons["epochs"] = f"{IMAGE_BUDGET:,} training images, about ten CPU-minutes"
    return Recipe(options, reasons)


def with_recipe(given: Mapping[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """``given`` (the options the user set) plus the recipe's options when it applies, said
    in one log line; counting the training items opens the data, decoding nothing."""
    if not applies(given):
        return dict(given)
    items = count_training_items(TrainConfig.from_options(**given).validate())
    recipe = pretrained_recipe(given, items)
    if recipe.options:
        log(recipe.describe(str(given["backbone"]), items))
    return {**given, **recipe.options}

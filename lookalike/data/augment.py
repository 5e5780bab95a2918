"""Named augmentation presets (``--augment``): which batched transforms a run trains with.

- ``digits``: a random shift of up to ``crop_padding`` pixels (pad and crop) and an optional
  mirror flip: made for small centred images (Fashion-MNIST at 28 px), where a crop of a
  third of the image would cut the object apart.
- ``photo``: a random resized crop (area share in [``crop_scale``, 1], aspect 3/4 to 4/3),
  colour jitter of ``color_jitter``, and an optional flip: for photos and renderings at
  any input size, where objects appear at many scales, framings and lighting conditions.
- ``none``: the images as they are.

Each preset is built from one :class:`AugmentSettings` and returns a callable
``(images (B, C, H, W), generator) -> (B, C, H, W)`` that draws every random number from
the generator. ``auto`` (the default of ``--augment``) is resolved by the trainer
(``lookalike.training.augment``): ``photo`` for a backbone with pretrained weights,
``digits`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lookalike.data.transforms import (
    Augment,
    color_jitter,
    random_horizontal_flip,
    random_resized_crop,
)
from lookalike.errors import ConfigError
from lookalike.registry import Registry

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class AugmentSettings:
    """The knobs the presets read; each preset ignores the ones that are not its own."""

    crop_padding: int = 2  # digits: largest shift in pixels
    flip: bool = True  # digits and photo: random left-right mirror, p = 0.5
    crop_scale: float = 0.35  # photo: smallest area share of the random crop
    color_jitter: float = 0.3  # photo: brightness / contrast / saturation in [1 - j, 1 + j]


@dataclass(frozen=True)
class PhotoAugment:
    """Random resized crop, then colour jitter, then (optionally) a flip.

    Call it as ``augment(images (B, C, H, W) in [0, 1], generator) -> (B, C, H, W)``.
    """

    crop_scale: float = 0.35
    color_jitter: float = 0.3
    flip: bool = True
    flip_p: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.crop_scale <= 1.0:
            raise ConfigError(f"--crop-scale must be in (0, 1], got {self.crop_scale}")
        if not 0.0 <= self.color_jitter < 1.0:
            raise ConfigError(f"--color-jitter must be in [0, 1), got {self.color_jitter}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = random_resized_crop(x, self.crop_scale, generator)
        x = color_jitter(x, self.color_jitter, generator)
        if self.flip:
            x = random_horizontal_flip(x, self.flip_p, generator)
        return x


def no_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The images unchanged (``--augment none``)."""
    return x


# --augment choices, besides "auto"
AUGMENTATIONS: Registry[Callable[[AugmentSettings], Augmentation]] = Registry("--augment")
AUGMENTATIONS.register("digits", lambda s: Augment(crop_padding=s.crop_padding, flip=s.flip))
AUGMENTATIONS.register("photo", lambda s: PhotoAugment(s.crop_scale, s.color_jitter, s.flip))
AUGMENTATIONS.register("none", lambda s: no_augment)


def create_augmentation(name: str, settings: AugmentSettings | None = None) -> Augmentation:
    """The preset ``name`` built from ``settings`` (defaults if None)."""
    return AUGMENTATIONS.get(name)(settings or AugmentSettings())

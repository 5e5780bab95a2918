"""--augment presets: photo (resized crop + jitter + flip), digits (today's shift), none, auto."""

from __future__ import annotations

import pytest
import torch

from lookalike.cli import build_parser, config_overrides
from lookalike.data.augment import (
    AUGMENTATIONS,
    AugmentSettings,
    PhotoAugment,
    create_augmentation,
    no_augment,
)
from lookalike.data.transforms import Augment
from lookalike.errors import ConfigError
from lookalike.training.augment import augment_name, build_augment
from lookalike.training.config import TrainConfig


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ramp(batch: int = 16, channels: int = 3, height: int = 24, width: int = 40) -> torch.Tensor:
    """Left-to-right ramp in [0, 1]: a flip makes a row decrease, a crop keeps it increasing."""
    return torch.linspace(0, 1, width).expand(batch, channels, height, width).contiguous()


@pytest.mark.parametrize(("channels", "height", "width"),
                         [(1, 28, 28), (3, 96, 96), (3, 128, 128), (3, 48, 80), (1, 64, 40)])
def test_photo_augment_shapes_and_range(channels: int, height: int, width: int) -> None:
    x = torch.rand(6, channels, height, width, generator=gen(1))
    out = PhotoAugment()(x, gen(2))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, x)


def test_photo_augment_is_reproducible_from_the_generator() -> None:
    x = torch.rand(8, 3, 32, 32, generator=gen(3))
    augment = PhotoAugment(crop_scale=0.3, color_jitter=0.4)
    assert torch.equal(augment(x, gen(4)), augment(x, gen(4)))
    assert not torch.allclose(augment(x, gen(4)), augment(x, gen(5)))


def test_photo_augment_at_scale_one_without_jitter_or_flip_is_the_identity() -> None:
    x = torch.rand(5, 3, 30, 50, generator=gen(6))
    out = PhotoAugment(crop_scale=1.0, color_jitter=0.0, flip=False)(x, gen(7))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_photo_flips_are_off_when_turned_off() -> None:
    x = ramp()
    for seed in range(5):
        rows = PhotoAugment(crop_scale=0.35, color_jitter=0.0, flip=False)(x, gen(seed))
        assert (rows[..., 1:] - rows[..., :-1] >= -1e-6).all()  # never mirrored
    flipped = PhotoAugment(crop_scale=1.0, color_jitter=0.0, flip=True)(x, gen(8))
    mirrored = [torch.allclose(flipped[b], x[b].flip(-1), atol=1e-5) for b in range(len(x))]
    kept = [torch.allclose(flipped[b], x[b], atol=1e-5) for b in range(len(x))]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 0 < sum(mirrored) < len(x)


def test_photo_augment_on_grayscale_changes_brightness_and_contrast_only() -> None:
    x = torch.rand(4, 1, 16, 16, generator=gen(9))
    out = PhotoAugment(crop_scale=1.0, color_jitter=0.5, flip=False)(x, gen(10))
    assert out.shape == x.shape and not torch.allclose(out, x)


def test_photo_augment_refuses_bad_settings() -> None:
    with pytest.raises(ConfigError, match="--crop-scale"):
        PhotoAugment(crop_scale=0.0)
    with pytest.raises(ConfigError, match="--color-jitter"):
        PhotoAugment(color_jitter=1.0)


def test_presets_by_name() -> None:
    assert AUGMENTATIONS.names() == ("digits", "photo", "none")
    settings = AugmentSettings(crop_padding=3, flip=False, crop_scale=0.5, color_jitter=0.1)
    assert create_augmentation("digits", settings) == Augment(crop_padding=3, flip=False)
    assert create_augmentation("photo", settings) == PhotoAugment(0.5, 0.1, flip=False)
    assert create_augmentation("none") is no_augment
    x = torch.rand(2, 1, 8, 8, generator=gen())
    assert no_augment(x, gen()) is x
    with pytest.raises(ConfigError, match="unknown --augment 'blur'"):
        create_augmentation("blur")


def test_auto_is_digits_for_small_cnn_and_photo_for_pretrained_backbones() -> None:
    assert augment_name(TrainConfig()) == "digits"
    for backbone in ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"):
        assert augment_name(TrainConfig.from_options(backbone=backbone)) == "photo"
    forced = TrainConfig.from_options(backbone="efficientnet-lite0", augment="digits")
    assert augment_name(forced) == "digits"
    assert augment_name(TrainConfig.from_options(augment="none")) == "none"


def test_default_runs_keep_todays_augmentation_bit_for_bit() -> None:
    x = torch.rand(9, 1, 28, 28, generator=gen(11))
    for options in ({}, {"crop_padding": 0, "flip": False}, {"crop_padding": 4}):
        config = TrainConfig.from_options(**options)
        old = Augment(crop_padding=config.data.crop_padding, flip=config.data.flip)
        assert build_augment(config) == old
        assert torch.equal(build_augment(config)(x, gen(12)), old(x, gen(12)))


def test_build_augment_reads_the_photo_knobs() -> None:
    config = TrainConfig.from_options(backbone="efficientnet-lite0", crop_scale=0.6,
                                      color_jitter=0.2, flip=False)
    assert build_augment(config) == PhotoAugment(0.6, 0.2, flip=False)


@pytest.mark.parametrize(("options", "message"), [
    ({"augment": "blur"}, "unknown --augment 'blur'; choose one of auto, digits, photo, none"),
    ({"crop_scale": 0.0}, r"--crop-scale must be a number in \(0, 1\]"),
    ({"crop_scale": 1.5}, r"--crop-scale must be a number in \(0, 1\]"),
    ({"color_jitter": -0.1}, r"--color-jitter must be a number in \[0, 1\]"),
    ({"color_jitter": 1.0}, "--color-jitter must be below 1"),
    ({"color_jitter": float("nan")}, "--color-jitter must be a number"),
])
def test_config_refuses_bad_augmentation(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_options(**options).validate()


def test_old_configs_without_the_new_fields_still_load() -> None:
    # a run saved before --augment trained with the pad-and-crop shift and resumes with it
    stored = TrainConfig().to_dict()
    for name in ("augment", "crop_scale", "color_jitter"):
        del stored["data"][name]
    del stored["model"]["pooling"]
    assert TrainConfig.from_dict(stored) == TrainConfig.from_options(augment="digits")


def test_command_line_options() -> None:
    args = build_parser().parse_args(
        ["train", "--out", "run", "--augment", "photo", "--crop-scale", "0.5",
         "--color-jitter", "0.2", "--no-flip", "--pooling", "gem"])
    given = config_overrides(args)
    assert {k: given[k] for k in ("augment", "crop_scale", "color_jitter", "flip", "pooling")} \
        == {"augment": "photo", "crop_scale": 0.5, "color_jitter": 0.2, "flip": False,
            "pooling": "gem"}
    assert "augment" not in config_overrides(build_parser().parse_args(["train", "--out", "r"]))

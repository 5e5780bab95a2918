"""to_tensor and the batched transforms, checked against plain per-image loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lookalike.data.transforms import (
    Augment,
    color_jitter,
    random_crop_with_padding,
    random_horizontal_flip,
    random_resized_crop,
    to_tensor,
)
from lookalike.errors import ConfigError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def rgb_image(width=6, height=4):
    pixels = np.arange(height * width * 3, dtype=np.uint8).reshape(height, width, 3)
    return Image.fromarray(pixels, mode="RGB"), pixels


def test_to_tensor_keeps_pixels_and_layout():
    image, pixels = rgb_image()
    x = to_tensor(image, size=None, channels=3)
    assert x.shape == (3, 4, 6) and x.dtype == torch.float32
    torch.testing.assert_close(x, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)


def test_to_tensor_resizes_and_converts_channels():
    image, _ = rgb_image()
    gray = to_tensor(image, size=8, channels=1)
    assert gray.shape == (1, 8, 8) and gray.min() >= 0 and gray.max() <= 1
    expected = np.asarray(image.convert("L").resize((8, 8), Image.Resampling.BILINEAR)) / 255
    np.testing.assert_allclose(gray[0].numpy(), expected, atol=1e-6)
    assert to_tensor(image, size=(5, 7), channels=3).shape == (3, 5, 7)
    three = to_tensor(image.convert("L"), size=None, channels=3)
    assert three.shape == (3, 4, 6) and torch.equal(three[0], three[2])
    with pytest.raises(ConfigError, match="channels must be 1 or 3, got 2"):
        to_tensor(image, size=None, channels=2)


def shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Oracle: the image moved by (dy, dx) with zero fill, by a plain loop over pixels."""
    out = torch.zeros_like(image)
    _, height, width = image.shape
    for y in range(height):
        for x in range(width):
            if 0 <= y - dy < height and 0 <= x - dx < width:
                out[:, y, x] = image[:, y - dy, x - dx]
    return out


def test_crop_is_a_shift_of_each_image():
    padding = 2
    x = torch.rand(16, 3, 5, 6, generator=gen(1)) + 0.1  # nonzero, so the fill shows
    out = random_crop_with_padding(x, padding, gen(2))
    assert out.shape == x.shape
    seen = set()
    for b in range(len(x)):
        shifts = [(dy, dx) for dy in range(-padding, padding + 1)
                  for dx in range(-padding, padding + 1)]
        matches = [s for s in shifts if torch.equal(out[b], shifted(x[b], *s))]
        assert len(matches) == 1, f"image {b} is not a shift of its input"
        seen.add(matches[0])
    assert len(seen) > 3  # per-image offsets, not one for the batch


def test_crop_and_flip_are_deterministic_given_the_generator():
    x = torch.rand(8, 1, 7, 7, generator=gen(3))
    torch.testing.assert_close(random_crop_with_padding(x, 3, gen(5)),
                               random_crop_with_padding(x, 3, gen(5)))
    assert not torch.equal(random_crop_with_padding(x, 3, gen(5)),
                           random_crop_with_padding(x, 3, gen(6)))
    torch.testing.assert_close(random_horizontal_flip(x, 0.5, gen(5)),
                               random_horizontal_flip(x, 0.5, gen(5)))


def test_crop_padding_zero_is_identity():
    x = torch.rand(2, 1, 4, 4, generator=gen())
    assert torch.equal(random_crop_with_padding(x, 0, gen()), x)
    with pytest.raises(ConfigError):
        random_crop_with_padding(x, -1, gen())


def test_flip():
    x = torch.rand(32, 2, 3, 5, generator=gen(4))
    always = random_horizontal_flip(x, 1.0, gen())
    assert torch.equal(always, x.flip(-1))
    assert torch.equal(random_horizontal_flip(always, 1.0, gen()), x)  # twice = identity
    assert torch.equal(random_horizontal_flip(x, 0.0, gen()), x)
    half = random_horizontal_flip(x, 0.5, gen(7))
    flipped = [torch.equal(half[b], x[b].flip(-1)) for b in range(len(x))]
    kept = [torch.equal(half[b], x[b]) for b in range(len(x))]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 4 < sum(flipped) < 28
    with pytest.raises(ConfigError):
        random_horizontal_flip(x, 1.5, gen())


def test_augment_composes_from_config():
    x = torch.rand(6, 1, 8, 8, generator=gen(8))
    assert torch.equal(Augment(crop_padding=0, flip=False)(x, gen()), x)
    augment = Augment()
    out = augment(x, gen(9))
    assert out.shape == x.shape and not torch.equal(out, x)
    torch.testing.assert_close(out, augment(x, gen(9)))
    # the shift keeps content: with zero padding the total mass can only shrink
    assert (out.sum(dim=(1, 2, 3)) <= x.sum(dim=(1, 2, 3)) + 1e-5).all()
    with pytest.raises(ConfigError):
        Augment(crop_padding=-2)


def test_crop_matches_padding_then_slicing():
    # independent check of the gather: pad with F.pad and slice image by image
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4) + 1
    out = random_crop_with_padding(x, 1, gen(11))
    padded = F.pad(x, (1, 1, 1, 1))
    for b in range(2):
        windows = [padded[b, :, i:i + 4, j:j + 4] for i in range(3) for j in range(3)]
        assert any(torch.equal(out[b], w) for w in windows)


@pytest.mark.parametrize(("height", "width"), [(28, 28), (96, 96), (128, 128), (40, 72), (9, 5)])
def test_resized_crop_keeps_shape_and_range(height, width):
    x = torch.rand(5, 3, height, width, generator=gen(12))
    out = random_resized_crop(x, 0.2, gen(13))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1  # bilinear: convex combinations of pixels
    assert not torch.allclose(out, x)


@pytest.mark.parametrize(("height", "width"), [(28, 28), (40, 72), (72, 40)])
def test_resized_crop_at_scale_one_is_the_identity(height, width):
    x = torch.rand(4, 2, height, width, generator=gen(14))
    torch.testing.assert_close(random_resized_crop(x, 1.0, gen(15)), x, atol=1e-5, rtol=0)


def test_resized_crop_is_an_upscaled_window_of_each_image():
    # a horizontal ramp: x(u) = u / (W - 1); a crop of width share w starting at a maps to
    # another ramp, so each output row is affine in its column with slope >= 0 and the
    # range it covers shrinks to about w, never beyond the image
    width = 64
    ramp = torch.linspace(0, 1, width).expand(8, 1, 16, width).contiguous()
    out = random_resized_crop(ramp, 0.3, gen(16))
    rows = out[:, 0, 8]  # (B, W)
    steps = rows.diff(dim=1)
    assert (steps >= -1e-6).all()  # still increasing: no flip, no rotation
    spans = rows[:, -1] - rows[:, 0]
    assert (spans <= 1 + 1e-6).all() and (spans < 0.99).any()
    assert len({round(s, 3) for s in spans.tolist()}) > 4  # a box of its own per image
    # every output row is the same row of the input (the ramp does not vary vertically)
    torch.testing.assert_close(out[:, 0, 0], out[:, 0, -1])


def test_resized_crop_keeps_the_area_share():
    # a single bright pixel-block in a dark image: the crop magnifies it by 1 / area share,
    # so the bright share of the output is the block's share / s, s in [min_scale, 1]
    x = torch.zeros(64, 1, 64, 64)
    x[:, :, 28:36, 28:36] = 1.0  # centred, so most crops keep it whole
    out = random_resized_crop(x, 0.5, gen(17))
    share = out.mean(dim=(1, 2, 3)) / x.mean(dim=(1, 2, 3))  # = 1 / s where it is kept whole
    whole = share > 1.0
    assert whole.sum() > 16
    assert (share[whole] <= 2.0 + 0.05).all()  # s >= 0.5


def test_resized_crop_is_deterministic_given_the_generator_and_checks_args():
    x = torch.rand(6, 3, 20, 30, generator=gen(18))
    torch.testing.assert_close(random_resized_crop(x, 0.35, gen(19)),
                               random_resized_crop(x, 0.35, gen(19)))
    assert not torch.allclose(random_resized_crop(x, 0.35, gen(19)),
                              random_resized_crop(x, 0.35, gen(20)))
    assert random_resized_crop(x[:0], 0.5, gen()).shape == (0, 3, 20, 30)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="crop scale"):
            random_resized_crop(x, bad, gen())


def jitter_oracle(image: torch.Tensor, b: float, c: float, s: float) -> torch.Tensor:
    """One image, step by step, with the luma written out."""
    weights = torch.tensor([0.299, 0.587, 0.114])
    out = (image * b).clamp(0, 1)
    luma = out[0] if len(out) == 1 else (out * weights[:, None, None]).sum(dim=0)
    out = (luma.mean() + c * (out - luma.mean())).clamp(0, 1)
    if len(out) == 3:
        luma = (out * weights[:, None, None]).sum(dim=0)
        out = (luma + s * (out - luma)).clamp(0, 1)
    return out


@pytest.mark.parametrize("channels", [1, 3])
def test_color_jitter_matches_a_per_image_oracle(channels):
    x = torch.rand(7, channels, 9, 11, generator=gen(21))
    out = color_jitter(x, 0.4, gen(22))
    factors = 1 + 0.4 * (2 * torch.rand(3, 7, generator=gen(22)) - 1)
    assert ((factors >= 0.6) & (factors <= 1.4)).all()
    for i in range(len(x)):
        expected = jitter_oracle(x[i], *factors[:, i].tolist())
        torch.testing.assert_close(out[i], expected, atol=1e-6, rtol=1e-5)
    assert out.min() >= 0 and out.max() <= 1


def test_color_jitter_zero_is_the_identity_and_args_are_checked():
    x = torch.rand(3, 3, 5, 5, generator=gen(23))
    assert torch.equal(color_jitter(x, 0.0, gen()), x)
    torch.testing.assert_close(color_jitter(x, 0.3, gen(24)), color_jitter(x, 0.3, gen(24)))
    with pytest.raises(ConfigError, match="colour jitter must be in"):
        color_jitter(x, 1.0, gen())
    with pytest.raises(ConfigError, match="1 or 3 channels"):
        color_jitter(torch.rand(1, 2, 4, 4), 0.3, gen())


def test_grayscale_jitter_leaves_gray_pixels_gray():
    # saturation of an RGB image whose channels are equal changes nothing
    gray = torch.rand(4, 1, 6, 6, generator=gen(25))
    rgb = gray.expand(-1, 3, -1, -1)
    out = color_jitter(rgb, 0.5, gen(26))
    torch.testing.assert_close(out[:, 0], out[:, 2], atol=1e-6, rtol=0)
    torch.testing.assert_close(color_jitter(gray, 0.5, gen(26))[:, 0], out[:, 1],
                               atol=1e-5, rtol=0)

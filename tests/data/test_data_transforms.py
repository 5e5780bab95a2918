"""to_tensor and the batched augmentations, checked against plain per-image loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lookalike.data.transforms import (
    Augment,
    random_crop_with_padding,
    random_horizontal_flip,
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

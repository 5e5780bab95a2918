"""Image -> tensor conversion and batched augmentations in plain torch (no torchvision).

Augmentations work on a whole batch (B, C, H, W) at once and draw every random number from
the ``torch.Generator`` they are given, so a run is reproducible from its seed. Mean/std
normalisation is not done here: it belongs to the model, which stores its own statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lookalike.errors import ConfigError

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 RGB -> luma weights, as Pillow's convert("L")


def as_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """An int or (height, width) -> (height, width), both positive."""
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if height <= 0 or width <= 0:
        raise ConfigError(f"image size must be positive, got {size}")
    return height, width


def to_tensor(image: Image.Image, size: int | tuple[int, int] | None,
              channels: int) -> torch.Tensor:
    """A decoded Pillow image -> (C, H, W) float32 in [0, 1], resized and channel-matched.

    Args:
        image: mode "L" or "RGB" (as ``decode_image`` returns); other modes are converted.
        size: output side, or (height, width); None keeps the image's own size.
        channels: 1 (grayscale, ITU-R 601 luma as Pillow computes it) or 3 (RGB).
    """
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    mode = "L" if channels == 1 else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    if size is not None:
        height, width = as_size(size)
        if image.size != (width, height):
            # Pillow's bilinear filter widens its support when shrinking: antialiased
            image = image.resize((width, height), Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8))  # (H, W) or (H, W, 3)
    chw = pixels.unsqueeze(0) if channels == 1 else pixels.permute(2, 0, 1)
    return chw.to(torch.float32).div_(255.0).contiguous()


def random_crop_with_padding(x: torch.Tensor, padding: int,
                             generator: torch.Generator) -> torch.Tensor:
    """Pad each image with ``padding`` zeros per side and crop it back at a random offset.

    Equivalent to shifting every image by its own (dy, dx) in [-padding, padding], the
    fill being zeros; done for the whole batch with one ``gather``, no loop over images.

    Args:
        x: (B, C, H, W) float images.
        padding: maximal shift in pixels (0: no-op).
        generator: draws the (B,) vertical and horizontal offsets.
    """
    if padding < 0:
        raise ConfigError(f"crop padding must be >= 0, got {padding}")
    if padding == 0 or x.shape[0] == 0:
        return x
    batch, channels, height, width = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator,
                            device=generator.device).to(x.device)
    rows = offsets[0, :, None] + torch.arange(height, device=x.device)  # (B, H)
    cols = offsets[1, :, None] + torch.arange(width, device=x.device)  # (B, W)
    flat = rows[:, :, None] * (width + 2 * padding) + cols[:, None, :]  # (B, H, W)
    flat = flat.reshape(batch, 1, height * width).expand(batch, channels, height * width)
    return padded.flatten(2).gather(2, flat).view(batch, channels, height, width)


def random_horizontal_flip(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``.

    Args:
        x: (B, C, H, W) images.
        p: flip probability in [0, 1].
        generator: draws the (B,) coin tosses.
    """
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"flip probability must be in [0, 1], got {p}")
    flip = torch.rand(x.shape[0], generator=generator, device=generator.device) < p
    return torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)


def random_resized_crop(x: torch.Tensor, min_scale: float, generator: torch.Generator,
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """Crop a random box from each image and resize it back to the image's own H x W.

    The box covers a share ``s ~ U(min_scale, 1)`` of the image's area with an aspect
    ratio (width / height, in pixels) drawn log-uniformly from ``ratio`` (Inception-style,
    as torchvision's ``RandomResizedCrop``). Where that box would not fit, the ratio is
    clamped to the nearest one that does, so the area is kept and ``min_scale = 1`` is the
    identity at any image shape. One ``affine_grid`` + bilinear ``grid_sample`` for the
    whole batch; the box always lies inside the image (border padding only at its edges).

    Args:
        x: (B, C, H, W) float images.
        min_scale: smallest area share, in (0, 1].
        generator: draws the (B,) areas, ratios and box centres.
        ratio: (min, max) aspect ratio of the box.
    """
    if not 0.0 < min_scale <= 1.0:
        raise ConfigError(f"crop scale must be in (0, 1], got {min_scale}")
    if not 0.0 < ratio[0] <= ratio[1]:
        raise ConfigError(f"crop aspect ratio range must be 0 < min <= max, got {ratio}")
    batch, _, height, width = x.shape
    if batch == 0:
        return x
    u = torch.rand(4, batch, generator=generator, device=generator.device,
                   dtype=torch.float64).to(x.device)  # (4, B): area, ratio, centre y, x
    area = min_scale + (1.0 - min_scale) * u[0]
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[1])
    # w_px = sqrt(area H W aspect) <= W and h_px = sqrt(area H W / aspect) <= H
    aspect = torch.minimum(torch.maximum(aspect, area * width / height), width / (area * height))
    box_w = torch.sqrt(area * aspect * height / width).clamp(max=1.0)  # share of the width
    box_h = torch.sqrt(area * width / (aspect * height)).clamp(max=1.0)
    centre_y = (1.0 - box_h) * (2.0 * u[2] - 1.0)  # in grid units, [-1, 1] the whole image
    centre_x = (1.0 - box_w) * (2.0 * u[3] - 1.0)
    theta = torch.zeros(batch, 2, 3, dtype=torch.float64, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = box_w, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = box_h, centre_y
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(x: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Scale each image's brightness, contrast and saturation by its own random factors.

    Each factor is drawn from U(1 - strength, 1 + strength), per image, and applied in that
    order, clamping to [0, 1] after each step (torchvision's ``ColorJitter`` definitions):
    brightness ``x * b``; contrast ``m + c (x - m)`` with m the image's mean luma;
    saturation ``g + s (x - g)`` with g each pixel's luma. Grayscale (C = 1) images get
    brightness and contrast only.

    Args:
        x: (B, C, H, W) images in [0, 1], C = 1 or 3.
        strength: in [0, 1); 0 leaves the images unchanged.
        generator: draws the (3, B) factors (also for grayscale, so streams stay aligned).
    """
    if not 0.0 <= strength < 1.0:
        raise ConfigError(f"colour jitter must be in [0, 1), got {strength}")
    channels = x.shape[1]
    if channels not in (1, 3):
        raise ConfigError(f"colour jitter needs 1 or 3 channels, got {channels}")
    if strength == 0.0 or x.shape[0] == 0:
        return x
    factors = torch.rand(3, x.shape[0], generator=generator, device=generator.device)
    factors = (1.0 + strength * (2.0 * factors - 1.0)).to(x.device, x.dtype)[..., None, None, None]
    brightness, contrast, saturation = factors  # each (B, 1, 1, 1)
    x = (x * brightness).clamp(0.0, 1.0)
    mean = _luma(x).mean(dim=(2, 3), keepdim=True)  # (B, 1, 1, 1)
    x = (mean + contrast * (x - mean)).clamp(0.0, 1.0)
    if channels == 3:
        gray = _luma(x)  # (B, 1, H, W)
        x = (gray + saturation * (x - gray)).clamp(0.0, 1.0)
    return x


def _luma(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H, W): ITU-R 601 luma of RGB, the channel itself of grayscale."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


@dataclass(frozen=True)
class Augment:
    """The ``digits`` augmentation (lookalike.data.augment): random shift, then random flip.

    Call it as ``augment(images (B, C, H, W), generator) -> (B, C, H, W)``.
    """

    crop_padding: int = 2
    flip: bool = True
    flip_p: float = 0.5

    def __post_init__(self) -> None:
        if self.crop_padding < 0:
            raise ConfigError(f"crop padding must be >= 0, got {self.crop_padding}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = random_crop_with_padding(x, self.crop_padding, generator)
        if self.flip:
            x = random_horizontal_flip(x, self.flip_p, generator)
        return x

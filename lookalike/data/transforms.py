"""Image -> tensor conversion and batched augmentations in plain torch (no torchvision).

Augmentations work on a whole batch (B, C, H, W) at once and draw every random number from
the ``torch.Generator`` they are given, so a run is reproducible from its seed. Mean/std
normalisation is not done here: it belongs to the model, which stores its own statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lookalike.errors import ConfigError


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


@dataclass(frozen=True)
class Augment:
    """The training augmentations, composed from config: random shift, then random flip.

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

"""Decode one image file safely into an 8-bit "L" or "RGB" Pillow image.

Real collections hold broken downloads, renamed text files, CMYK JPEGs, 16-bit scans,
transparent PNGs, sideways phone photos and the odd decompression bomb. Every one of them is
either normalised here or rejected with a ``BadImageError`` that names the file and the
reason, so the rest of the package only ever sees "L" or "RGB" pixels.
"""

from __future__ import annotations

import os
import warnings
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lookalike.errors import BadImageError, ImageTooLargeError

DEFAULT_MAX_PIXELS = 40_000_000  # 40 megapixels: a large photo, far below a bomb
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer / float) grayscale -> "L", scaling instead of clipping.

    Pillow's own ``convert("L")`` clips 16-bit values at 255, which turns most scans white.
    16-bit data is divided by 257 (65535 -> 255); other ranges are stretched min..max.
    """
    values = np.asarray(image).astype(np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode in _SIXTEEN_BIT or (image.mode == "I" and low >= 0 and high <= 65535):
        scaled = values / 257.0
    elif high > low:
        scaled = (values - low) * (255.0 / (high - low))
    else:
        scaled = np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _on_white(image: Image.Image) -> Image.Image:
    """Composite a transparent image over a white background and return it as "RGB"."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def normalize_mode(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> "L" (grayscale kinds) or "RGB" (everything else)."""
    mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        return _on_white(image)
    if mode in ("L", "RGB"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode in (*_SIXTEEN_BIT, "I", "F"):
        return _scale_to_8bit(image)
    return image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, RGBX


def decode_image(
    source: str | os.PathLike[str] | IO[bytes],
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> Image.Image:
    """Open, fully decode and normalise one image, or raise a ``BadImageError`` saying why.

    The pixel count is checked right after the header is read and before any pixel is
    decoded, so a 10-gigapixel bomb costs nothing. The full decode (``load()``) happens
    inside the guarded block, so a truncated file fails here and not in a later batch.

    Args:
        source: a file path, or a binary file object (e.g. an upload).
        max_pixels: refuse images with more pixels than this (None: Pillow's own limit).
        name: how to name the image in error messages (default: the path).

    Returns:
        A decoded image of mode "L" or "RGB", EXIF orientation applied, alpha composited
        over white, detached from the file.
    """
    label = name or (
        os.fspath(source) if isinstance(source, str | os.PathLike)
        else str(getattr(source, "name", "<image>"))
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageTooLargeError(
                        f"{label}: {width}x{height} image has {width * height} pixels, above "
                        f"the cap of {max_pixels} (decompression bomb?)"
                    )
                if width == 0 or height == 0:
                    raise BadImageError(f"{label}: empty image ({width}x{height})")
                image.load()
                upright = ImageOps.exif_transpose(image)
                result = normalize_mode(upright)
                return result.copy() if result is image else result
    except BadImageError:
        raise
    except FileNotFoundError:
        raise BadImageError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise BadImageError(f"{label}: is a folder, not an image file") from None
    except UnidentifiedImageError:
        raise BadImageError(f"{label}: not an image file (cannot identify image)") from None
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{label}: decompression bomb ({exc})") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for bad data
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadImageError(f"{label}: truncated or corrupt image data ({reason})") from None

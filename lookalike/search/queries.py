"""Query inputs -> the tensors the index's model embeds, prepared exactly as the collection was.

A query may be an image file path, a Pillow image, a numpy array (H, W) / (H, W, 3) uint8,
or a tensor (C, H, W) / (B, C, H, W) in [0, 1]. Files and Pillow images go through the same
``to_tensor`` resize and channel conversion as the indexed items, so a collection image
used as a query finds itself at distance ~0.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
from PIL import Image

from lookalike.data import DEFAULT_MAX_PIXELS, decode_image, to_tensor
from lookalike.errors import DataError

Query = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor | bytes


def query_batch(queries: Query | Sequence[Query], size: int, channels: int,
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """(B, C, size, size) float32 in [0, 1] for one query or a list of them.

    Bytes are decoded as an image file (an upload); errors name the file or the position
    of the query at fault.
    """
    if isinstance(queries, torch.Tensor) and queries.dim() == 4:
        return _checked_tensor(queries, "queries")
    batch = list(queries) if isinstance(queries, list | tuple) else [cast(Query, queries)]
    if not batch:
        raise DataError("no queries given")
    parts = [_one(query, i, size, channels, max_pixels) for i, query in enumerate(batch)]
    shapes = {tuple(p.shape[-3:]) for p in parts}
    if len(shapes) > 1:
        parts = [torch.nn.functional.interpolate(p[None], size=(size, size), mode="bilinear",
                                                 antialias=True, align_corners=False)[0]
                 if tuple(p.shape[-2:]) != (size, size) else p for p in parts]
    return torch.stack(parts)


def _one(query: Any, position: int, size: int, channels: int,
         max_pixels: int | None) -> torch.Tensor:
    if isinstance(query, str | os.PathLike):
        return to_tensor(decode_image(query, max_pixels=max_pixels), size, channels)
    if isinstance(query, bytes | bytearray):
        image = decode_image(io.BytesIO(query), max_pixels=max_pixels,
                             name=f"query {position + 1}")
        return to_tensor(image, size, channels)
    if isinstance(query, Image.Image):
        return to_tensor(query, size, channels)
    if isinstance(query, np.ndarray):
        if query.dtype != np.uint8 or not (query.ndim == 2 or (query.ndim == 3
                                                               and query.shape[2] == 3)):
            raise DataError(f"query {position + 1}: arrays must be uint8 (H, W) or (H, W, 3), "
                            f"got {query.dtype} {query.shape}")
        return to_tensor(Image.fromarray(query), size, channels)
    if isinstance(query, torch.Tensor):
        if query.dim() != 3:
            raise DataError(f"query {position + 1}: tensors must be (C, H, W) or (B, C, H, W), "
                            f"got shape {tuple(query.shape)}")
        return _checked_tensor(query[None], f"query {position + 1}")[0]
    raise DataError(f"query {position + 1}: expected an image path, Pillow image, array or "
                    f"tensor, got {type(query).__name__}")


def _checked_tensor(images: torch.Tensor, name: str) -> torch.Tensor:
    """Float tensors must be finite and within [0, 1]; uint8 tensors are scaled."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    images = images.float()
    if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise DataError(f"{name}: image tensors must hold finite values in [0, 1]")
    return images

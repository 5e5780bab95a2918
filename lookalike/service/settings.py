"""What the web service allows: the limits that keep one upload from hurting the server."""

from __future__ import annotations

from dataclasses import dataclass

from lookalike.data import DEFAULT_MAX_PIXELS
from lookalike.errors import ConfigError

MB = 1024 * 1024
DEFAULT_HOST = "127.0.0.1"
"""Only this machine can connect unless the user says otherwise."""
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class ServiceSettings:
    """Limits and defaults of ``lookalike serve``.

    Attributes:
        max_upload_bytes: largest accepted request body (an uploaded image); 413 above.
        max_pixels: largest accepted image, checked from its header before decoding
            (decompression bombs); 413 above.
        default_k, max_k: results per search when not asked, and the most one may ask.
        max_random: the most items ``GET /api/items?random=N`` returns.
        thumbnail_size: longest side of the thumbnails the page shows.
        thumbnail_cache: thumbnails kept in memory (encoded bytes, least recently used out).
    """

    max_upload_bytes: int = 10 * MB
    max_pixels: int = DEFAULT_MAX_PIXELS
    default_k: int = 12
    max_k: int = 100
    max_random: int = 100
    thumbnail_size: int = 256
    thumbnail_cache: int = 4096

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if self.default_k > self.max_k:
            raise ConfigError(f"default_k ({self.default_k}) is above max_k ({self.max_k})")

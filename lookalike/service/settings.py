"""What the web service allows: the limits that keep one upload from hurting the server."""

from __future__ import annotations

from dataclasses import dataclass

from lookalike.data import DEFAULT_MAX_PIXELS
from lookalike.errors import ConfigError

MB = 1024 * 1024
DEFAULT_HOST = "127.0.0.1"
"""Only this machine can connect unless the user says otherwise."""
DEFAULT_PORT = 8000
MAX_BATCH_WAIT_MS = 1000.0
"""A query held a second for company is a bug, not a setting."""


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
        batching: embed concurrent uploads together (``service.batcher``); False embeds
            them one at a time, each under the model's lock.
        max_batch: most queries per forward pass.
        batch_wait_ms: longest a query waits for others to join its batch (0: batch only
            what is already queued).
        max_queue: most searches waiting for the model; more are answered 503 with a
            ``Retry-After`` of ``retry_after_s`` seconds.
        latency_window: recent searches and batches ``/api/health`` summarises.
    """

    max_upload_bytes: int = 10 * MB
    max_pixels: int = DEFAULT_MAX_PIXELS
    default_k: int = 12
    max_k: int = 100
    max_random: int = 100
    thumbnail_size: int = 256
    thumbnail_cache: int = 4096
    batching: bool = True
    max_batch: int = 32
    batch_wait_ms: float = 2.0
    max_queue: int = 256
    retry_after_s: int = 1
    latency_window: int = 1000

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if name not in ("batching", "batch_wait_ms") and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if not 0 <= self.batch_wait_ms <= MAX_BATCH_WAIT_MS:
            raise ConfigError(f"batch_wait_ms must be between 0 and {MAX_BATCH_WAIT_MS}, "
                              f"got {self.batch_wait_ms}")
        if self.default_k > self.max_k:
            raise ConfigError(f"default_k ({self.default_k}) is above max_k ({self.max_k})")

    def timed_batches(self) -> tuple[int, ...]:
        """The batch sizes the runtimes are timed at before serving: those it will run."""
        if not self.batching:
            return (1,)
        return tuple(sorted({1, min(8, self.max_batch), self.max_batch}))

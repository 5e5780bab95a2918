"""Item images for the page: encoded once, kept in a small LRU cache of bytes."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

from PIL import Image

from lookalike.search import Index


class ThumbnailCache:
    """Encoded thumbnails by item id: PNG for grayscale or tiny images, JPEG for photos."""

    def __init__(self, index: Index, size: int, capacity: int, max_pixels: int) -> None:
        self.index = index
        self.size = size
        self.capacity = capacity
        self.max_pixels = max_pixels
        self._cache: OrderedDict[int, tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, item_id: int) -> tuple[bytes, str]:
        """(bytes, media type) of item ``item_id``'s thumbnail; raises for unknown ids."""
        with self._lock:
            if item_id in self._cache:
                self._cache.move_to_end(item_id)
                return self._cache[item_id]
        encoded = encode_thumbnail(self.index.image(item_id, max_pixels=self.max_pixels),
                                   self.size)
        with self._lock:
            self._cache[item_id] = encoded
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return encoded


def encode_thumbnail(image: Image.Image, size: int) -> tuple[bytes, str]:
    """Shrink (never enlarge) to ``size`` on the longest side and encode. The image is
    shrunk in place: ``Index.image`` gives a fresh one per call, so no copy is needed."""
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if image.mode == "L" or max(image.size) <= 64:
        image.save(buffer, format="PNG")
        return buffer.getvalue(), "image/png"
    image.convert("RGB").save(buffer, format="JPEG", quality=85)
    return buffer.getvalue(), "image/jpeg"

"""lookalike: learn an image embedding with triplet loss and find the items that look alike."""

from __future__ import annotations

__version__ = "0.1.0"

"""Helpers shared by the service tests: a tiny index and in-memory image files.

The embedder is conftest's untrained 16-d SmallCNN: its embeddings carry no meaning, but a
collection image used as a query still finds itself at distance ~0, which is all the
service tests need.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from lookalike.search import Index

from .conftest import images_of, save_tiny_checkpoint, write_class_folder
from .test_search_distances import checkpoint_for

CLASSES = 3  # the tiny checkpoint's class names: class_0 .. class_2
PER_CLASS = 8
BACKENDS = ("faiss", "qdrant")


def build_tiny_index(root: Path, distance: str = "euclidean", backend: str = "faiss") -> Index:
    """A flat index over a generated 3-class x 8-image folder under ``root``; with another
    ``distance`` than the default, by a model trained (so its checkpoint says) with it and
    spread out over the images, so that distances are of order 1. ``backend`` "qdrant"
    keeps the vectors in a Qdrant collection in local mode (under ``root``)."""
    folder = write_class_folder(root / "images", classes=CLASSES, per_class=PER_CLASS)
    if distance == "euclidean":
        checkpoint = save_tiny_checkpoint(root / "checkpoint", seed=0)
    else:
        checkpoint = checkpoint_for(root, distance, images=images_of(folder))
    qdrant = root / "qdrant" if backend == "qdrant" else None
    return Index.build(checkpoint, folder, root / "index", progress=False, qdrant=qdrant,
                       log=lambda *_: None)


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def item_path(index: Index, item_id: int) -> Path:
    """The file item ``item_id`` was indexed from."""
    record = index.records([item_id])[item_id]
    assert record.path is not None
    return Path(record.path)

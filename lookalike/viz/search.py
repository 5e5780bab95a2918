"""Search results as a picture: each query, then its top-k items with their distances."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from lookalike.search import Hit, Index
from lookalike.viz.grids import plot_retrieval_grid

THUMBNAIL = 96
"""Side of the thumbnails drawn in a search grid (pixels)."""


def _thumbnail(image: Image.Image) -> np.ndarray:
    image = image.copy()
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    return np.asarray(image)


def plot_search_grid(index: Index, query_images: Sequence[Image.Image],
                     results: Sequence[Sequence[Hit]],
                     query_labels: Sequence[str | None] | None = None) -> Figure:
    """One row per query; frames are green/red where the query's and the item's labels are
    both known, grey otherwise. Rows with fewer hits than the longest are padded blank."""
    k = max(len(row) for row in results)
    blank = np.ones((THUMBNAIL, THUMBNAIL), dtype=np.float32)
    images, distances, labels = [], np.full((len(results), k), np.nan), []
    for row_number, row in enumerate(results):
        images.append([_thumbnail(index.image(hit.id)) for hit in row]
                      + [blank] * (k - len(row)))
        distances[row_number, :len(row)] = [hit.distance for hit in row]
        labels.append([hit.label for hit in row] + [None] * (k - len(row)))
    known = None
    if query_labels is not None and any(label is not None for label in query_labels):
        known = list(query_labels)
    return plot_retrieval_grid(
        [_thumbnail(image) for image in query_images], images, distances,
        query_labels=known,
        result_labels=np.array(labels, dtype=object) if known is not None else None)

"""Retrieval grids: each query next to its top-k results, right ones framed green, wrong red.

A grid shows at a glance what numbers hide: which classes get confused, and whether the
"wrong" neighbours are really wrong or near-duplicates with a noisy label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lookalike.errors import DataError
from lookalike.viz.figures import new_figure

RIGHT, WRONG, QUERY = "#1a9850", "#d73027", "#4d4d4d"


def _as_image(image: Any) -> np.ndarray:
    """(H, W) / (H, W, 1) / (H, W, 3) uint8 or float [0, 1] -> float array in [0, 1]."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise DataError(f"images must be (H, W) or (H, W, 3) arrays, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float32) / 255.0
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def _show(ax: Axes, image: Any, colour: str, title: str, xlabel: str) -> None:
    array = _as_image(image)
    ax.imshow(array, cmap="gray" if array.ndim == 2 else None, vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(4)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)


def _name(label: Any, class_names: Sequence[str] | None) -> str:
    if label is None:
        return ""
    if class_names is not None and 0 <= int(label) < len(class_names):
        return str(class_names[int(label)])
    return str(label)


def plot_retrieval_grid(query_images: Sequence[Any], result_images: Sequence[Sequence[Any]],
                        result_distances: Any,
                        query_labels: Sequence[int | str | None] | np.ndarray | None = None,
                        result_labels: Any = None,
                        class_names: Sequence[str] | None = None) -> Figure:
    """One row per query: the query, then its k results with their distances.

    Args:
        query_images: Q images, each (H, W) or (H, W, 3), uint8 or float in [0, 1].
        result_images: Q rows of k images (any sizes; each panel scales its own).
        result_distances: (Q, k) distances, written under each result.
        query_labels: (Q,) labels (ints name ``class_names`` entries, other labels are shown
            as they are, None is unknown); with ``result_labels`` they colour the frames
            (green: same label as the query, red: different). Without them frames are grey.
        result_labels: (Q, k) labels of the results.
        class_names: names for the labels in the titles.
    Returns a Figure with Q * (k + 1) Axes.
    """
    distances = np.asarray(result_distances, dtype=np.float64)
    q = len(query_images)
    k = distances.shape[1] if distances.ndim == 2 else -1
    if q == 0 or distances.shape != (q, k) or len(result_images) != q or any(
            len(row) != k for row in result_images):
        raise DataError(f"expected {q} queries with k results each and ({q}, k) distances, "
                        f"got {len(result_images)} result rows, distances {distances.shape}")
    labels = None if result_labels is None else np.asarray(result_labels)
    if labels is not None and labels.shape != (q, k):
        raise DataError(f"result_labels must have shape ({q}, {k}), got {labels.shape}")
    fig = new_figure(1.3 * (k + 1), 1.5 * q)
    axes = fig.subplots(q, k + 1, squeeze=False)
    for row in range(q):
        query_label = None if query_labels is None else query_labels[row]
        _show(axes[row, 0], query_images[row], QUERY, "query", _name(query_label, class_names))
        for col in range(k):
            label = None if labels is None else labels[row, col]
            colour = QUERY
            if label is not None and query_label is not None:
                colour = RIGHT if label == query_label else WRONG
            _show(axes[row, col + 1], result_images[row][col], colour,
                  _name(label, class_names), f"d={distances[row, col]:.3f}")
    return fig

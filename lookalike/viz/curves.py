"""Training curves from a run's ``metrics.jsonl``: is it learning, or collapsing?

A falling loss alone can hide a collapsing embedding (every distance shrinks to zero), so
the mean anchor-positive and anchor-negative distances get a panel of their own, next to
the fraction of triplets that still violate the margin and the validation metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from lookalike.viz.figures import new_figure

# (panel title, y label, [(record key, legend label), ...])
PANELS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("Training loss", "loss", (("train_loss", "train loss"),)),
    ("Triplets violating the margin", "fraction", (("fraction_positive", "fraction positive"),)),
    ("Mean distances", "distance", (("mean_positive_distance", "anchor-positive"),
                                    ("mean_negative_distance", "anchor-negative"))),
    ("Validation retrieval", "score", (("val_map_at_r", "MAP@R"),
                                       ("val_precision_at_1", "P@1"))),
)


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of the records that have a finite ``key``."""
    xs, ys = [], []
    for position, record in enumerate(records, start=1):
        value = record.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            xs.append(float(record.get("epoch", position)))
            ys.append(float(value))
    return xs, ys


def plot_training_curves(records: Sequence[dict[str, Any]]) -> Figure:
    """One panel per group of metrics present in ``records``; absent keys are skipped.

    Args:
        records: one dict per epoch with any of epoch, seconds (cumulative wall time),
            train_loss, fraction_positive, mean_positive_distance, mean_negative_distance,
            val_map_at_r, val_precision_at_1.
    Returns a Figure with one Axes per panel that has data (one "no data" Axes if none).
    """
    panels = [(title, ylabel, [(label, *_series(records, key)) for key, label in lines])
              for title, ylabel, lines in PANELS]
    panels = [(t, yl, [line for line in lines if line[1]]) for t, yl, lines in panels]
    panels = [panel for panel in panels if panel[2]]
    if not panels:
        fig = new_figure(5, 3)
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no metrics recorded yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    ncols = min(len(panels), 2)
    nrows = math.ceil(len(panels) / ncols)
    fig = new_figure(5.0 * ncols, 3.4 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (title, ylabel, lines) in zip(axes, panels, strict=False):
        for label, xs, ys in lines:
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend()
    for ax in axes[len(panels):]:
        fig.delaxes(ax)
    seconds = [r["seconds"] for r in records if isinstance(r.get("seconds"), (int, float))]
    epochs = [r["epoch"] for r in records if isinstance(r.get("epoch"), (int, float))]
    summary = f"{len(records)} records"
    if epochs:
        summary = f"{int(max(epochs))} epochs"
    if seconds:
        summary += f", {max(seconds):.0f} s wall time"
    fig.suptitle(f"Training curves ({summary})")
    return fig

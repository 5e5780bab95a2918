"""Compare mining strategies by epochs *and* wall time to a metric, mining cost included.

A strategy that needs fewer epochs can still lose on the clock (offline pool mining costs
time), which is why every comparison plot has both x axes side by side (docs/design.md 2.3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from lookalike.errors import DataError
from lookalike.viz.figures import new_figure

Point = tuple[float, float, float]  # (epoch, cumulative seconds, value)


def _seed_runs(runs: Sequence[Point] | Sequence[Sequence[Point]]) -> list[list[Point]]:
    """Accept one run (a list of points) or several seeds (a list of lists of points)."""
    if len(runs) and isinstance(runs[0], Sequence) and len(runs[0]) and isinstance(
            runs[0][0], Sequence):
        return [list(run) for run in runs]  # type: ignore[arg-type]
    return [list(runs)]  # type: ignore[arg-type]


def _mean_curve(seeds: list[list[Point]]) -> tuple[np.ndarray, ...]:
    """Per epoch, over the seeds that reached it: epochs, mean seconds, mean/min/max value."""
    table: dict[float, list[tuple[float, float]]] = {}
    for run in seeds:
        for point in run:
            if len(point) != 3:
                raise DataError(f"points must be (epoch, seconds, value), got {point!r}")
            epoch, elapsed, value = (float(v) for v in point)
            table.setdefault(epoch, []).append((elapsed, value))
    epochs = np.array(sorted(table))
    stats = [np.array(table[e]) for e in epochs]
    seconds = np.array([s[:, 0].mean() for s in stats])
    values = [s[:, 1] for s in stats]
    return (epochs, seconds, np.array([v.mean() for v in values]),
            np.array([v.min() for v in values]), np.array([v.max() for v in values]))


def plot_metric_curves(runs: Mapping[str, Sequence[Point] | Sequence[Sequence[Point]]],
                       metric_name: str, target: float | None = None) -> Figure:
    """Metric vs epoch (left) and vs wall-clock seconds (right), one line per strategy.

    Args:
        runs: strategy name -> points ``(epoch, seconds, value)`` of one run, or a list of
            such lists (one per seed): then the line is the mean over seeds and a light
            band spans their min..max.
        metric_name: y-axis label, e.g. "MAP@R".
        target: draw this value as a dashed line (the "time to reach" threshold).
    Returns a Figure with 2 Axes.
    """
    if not runs:
        raise DataError("plot_metric_curves needs at least one strategy")
    fig = new_figure(11, 4)
    by_epoch, by_time = fig.subplots(1, 2)
    for i, (name, points) in enumerate(runs.items()):
        seeds = [run for run in _seed_runs(points) if run]
        if not seeds:
            continue
        epochs, seconds, mean, low, high = _mean_curve(seeds)
        colour = f"C{i % 10}"
        label = name if len(seeds) == 1 else f"{name} (mean of {len(seeds)} seeds)"
        for ax, xs in ((by_epoch, epochs), (by_time, seconds)):
            ax.plot(xs, mean, color=colour, marker="o", markersize=3, label=label)
            if len(seeds) > 1:
                ax.fill_between(xs, low, high, color=colour, alpha=0.15, linewidth=0)
    for ax, xlabel in ((by_epoch, "epoch"), (by_time, "wall-clock seconds (mining included)")):
        if target is not None:
            ax.axhline(target, color="0.4", linestyle="--", linewidth=1, label="target")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric_name)
        ax.grid(alpha=0.3)
    by_epoch.set_title(f"{metric_name} by epoch")
    by_time.set_title(f"{metric_name} by wall time")
    by_epoch.legend(fontsize=8)
    return fig

"""Plots as matplotlib Figures (no pyplot state); ``save_figure`` writes them as PNG."""

from __future__ import annotations

from lookalike.viz.curves import plot_training_curves
from lookalike.viz.figures import new_figure, save_figure
from lookalike.viz.grids import plot_retrieval_grid
from lookalike.viz.strategies import plot_metric_curves

__all__ = [
    "new_figure",
    "plot_metric_curves",
    "plot_retrieval_grid",
    "plot_training_curves",
    "save_figure",
]

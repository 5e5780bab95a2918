"""Figures without pyplot: no global figure registry, safe in servers and threads."""

from __future__ import annotations

import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lookalike.files import atomic_path


def new_figure(width: float, height: float) -> Figure:
    """A Figure (inches) attached to an Agg canvas, owned by the caller alone."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Write ``fig`` as a PNG atomically (a viewer never sees half an image)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi)

"""The distance-distribution picture behind hybrid mining (``lookalike analyze``).

Top: anchor-positive and anchor-negative distances over all sampled anchors, with the two
peaks marked and the four regions shaded (docs/design.md 2.1): easy positives left of the positive
peak, hard positives right of it, hard negatives left of the negative peak, easy negatives
right of it; the pooled items' distances are overlaid. Bottom: the same for a few single
anchors, with their pooled items marked.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lookalike.mining.analysis import PoolAnalysis
from lookalike.viz.figures import new_figure

POSITIVE, NEGATIVE = "tab:blue", "tab:red"


def _shade_regions(ax: Axes, lo: float, hi: float, positive_peak: float,
                   negative_peak: float) -> None:
    ax.axvspan(lo, positive_peak, color=POSITIVE, alpha=0.06, label="easy positives")
    ax.axvspan(positive_peak, hi, color=POSITIVE, alpha=0.12, hatch="//", fill=False,
               linewidth=0, label="hard positives (right of the positive peak)")
    ax.axvspan(lo, negative_peak, color=NEGATIVE, alpha=0.12, hatch="\\\\", fill=False,
               linewidth=0, label="hard negatives (left of the negative peak)")
    ax.axvspan(negative_peak, hi, color=NEGATIVE, alpha=0.06, label="easy negatives")


def _overview(ax: Axes, analysis: PoolAnalysis) -> None:
    s = analysis.summary
    edges = np.asarray(s["bin_edges"])
    widths = np.diff(edges)
    for counts, color, name in ((s["positive_counts"], POSITIVE, "anchor-positive"),
                                (s["negative_counts"], NEGATIVE, "anchor-negative")):
        counts = np.asarray(counts, dtype=float)
        density = counts / max(counts.sum(), 1) / widths
        ax.stairs(density, edges, fill=True, color=color, alpha=0.35, label=name)
    lo, hi = float(edges[0]), float(edges[-1])
    _shade_regions(ax, lo, hi, s["positive_peak"], s["negative_peak"])
    for peak, color, name in ((s["positive_peak"], POSITIVE, "positive"),
                              (s["negative_peak"], NEGATIVE, "negative")):
        ax.axvline(peak, color=color, linestyle="--", linewidth=1.5)
        ax.annotate(f"{name} peak {peak:.3f}", (peak, 0.97), xycoords=("data", "axes fraction"),
                    ha="center", va="top", fontsize=8, color=color,
                    bbox={"boxstyle": "round", "fc": "white", "ec": color, "alpha": 0.9})
    for values, color, name in ((analysis.pooled_positive, POSITIVE, "pooled hard positives"),
                                (analysis.pooled_negative, NEGATIVE, "pooled hard negatives")):
        if values:
            ax.hist(values, bins=edges.tolist(), density=True, histtype="step", linewidth=2,
                    color=color, linestyle=":", label=name)
    ax.set_xlim(lo, hi)
    ax.set_xlabel(f"{s['metric']} distance")
    ax.set_ylabel("density")
    ax.set_title(f"All sampled anchors ({len(s['anchors'])}): overlap {s['overlap']:.3f}, "
                 f"{100 * s['hard_anchor_share']:.1f}% of anchors have a negative closer "
                 f"than their median positive", fontsize=10)
    ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 0.88), ncol=2)


def _example(ax: Axes, example: dict, edges: np.ndarray) -> None:
    for values, color, name in ((example["positive"], POSITIVE, "positives"),
                                (example["negative"], NEGATIVE, "negatives")):
        ax.hist(values, bins=edges.tolist(), density=True, color=color, alpha=0.4, label=name)
    for values, color, name in ((example["pooled_positive"], POSITIVE, "pooled"),
                                (example["pooled_negative"], NEGATIVE, "pooled")):
        for i, value in enumerate(values):
            ax.axvline(value, color=color, linewidth=1.2, label=name if i == 0 else None)
    ax.set_title(f"anchor {example['anchor']} (label {example['label']})", fontsize=9)
    ax.set_xlabel("distance")
    ax.legend(fontsize=6)


def plot_distance_analysis(analysis: PoolAnalysis) -> Figure:
    """Overview histogram on top, one panel per example anchor below."""
    examples = analysis.examples
    fig = new_figure(12, 8 if examples else 5)
    grid = fig.add_gridspec(2 if examples else 1, max(len(examples), 1),
                            height_ratios=[3, 2] if examples else [1])
    _overview(fig.add_subplot(grid[0, :]), analysis)
    edges = np.asarray(analysis.summary["bin_edges"])
    for column, example in enumerate(examples):
        _example(fig.add_subplot(grid[1, column]), example, edges)
    fig.suptitle("Anchor-positive vs anchor-negative distances and the mined pools")
    return fig

"""Plots: Figures with the expected axes and content, saved as real PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from lookalike.errors import DataError
from lookalike.viz import (
    plot_metric_curves,
    plot_retrieval_grid,
    plot_training_curves,
    save_figure,
)
from lookalike.viz.grids import QUERY, RIGHT, WRONG

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def records(epochs: int = 4, validation: bool = True) -> list[dict[str, float]]:
    out = []
    for e in range(1, epochs + 1):
        record = {"epoch": e, "seconds": 10.0 * e, "train_loss": 1.0 / e,
                  "fraction_positive": 0.5 / e, "mean_positive_distance": 0.5,
                  "mean_negative_distance": 1.0 + 0.1 * e}
        if validation and e % 2 == 0:
            record |= {"val_map_at_r": 0.1 * e, "val_precision_at_1": 0.2 * e}
        out.append(record)
    return out


def test_training_curves_have_one_panel_per_metric_group(tmp_path: Path) -> None:
    fig = plot_training_curves(records())
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Training loss", "Triplets violating the margin", "Mean distances",
                      "Validation retrieval"]
    validation = fig.axes[3]
    assert [line.get_label() for line in validation.get_lines()] == ["MAP@R", "P@1"]
    np.testing.assert_allclose(validation.get_lines()[0].get_xdata(), [2, 4])
    np.testing.assert_allclose(validation.get_lines()[0].get_ydata(), [0.2, 0.4])
    assert "4 epochs, 40 s" in fig.get_suptitle()
    save_figure(fig, tmp_path / "plots" / "curves.png")
    assert (tmp_path / "plots" / "curves.png").read_bytes()[:8] == PNG_MAGIC


def test_training_curves_skip_missing_keys_and_bad_values() -> None:
    rows = records(validation=False)
    rows[1]["train_loss"] = float("nan")
    rows[2]["train_loss"] = None  # type: ignore[assignment]
    fig = plot_training_curves(rows)
    assert len(fig.axes) == 3
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_xdata(), [1, 4])
    only_loss = plot_training_curves([{"epoch": 1, "train_loss": 0.3}])
    assert len(only_loss.axes) == 1
    empty = plot_training_curves([])
    assert len(empty.axes) == 1 and empty.axes[0].texts[0].get_text() == "no metrics recorded yet"


def test_retrieval_grid_layout_borders_and_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    queries = [rng.integers(0, 256, (8, 8), dtype=np.uint8),
               rng.random((8, 8, 3)).astype(np.float32)]
    results = [[rng.integers(0, 256, (8, 8, 1), dtype=np.uint8) for _ in range(3)],
               [rng.random((6, 6)) * 2 for _ in range(3)]]  # floats out of range are clipped
    distances = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    fig = plot_retrieval_grid(queries, results, distances, query_labels=[0, 1],
                              result_labels=[[0, 1, 0], [1, 1, 2]],
                              class_names=["cat", "dog", "fox"])
    assert len(fig.axes) == 2 * 4
    frames = [to_hex(ax.spines["top"].get_edgecolor()) for ax in fig.axes]
    assert frames == [QUERY, RIGHT, WRONG, RIGHT, QUERY, RIGHT, RIGHT, WRONG]
    assert fig.axes[1].get_xlabel() == "d=0.100" and fig.axes[2].get_title() == "dog"
    assert fig.axes[4].get_xlabel() == "dog"  # the query's label
    image = fig.axes[5].get_images()[0].get_array()
    assert image.min() >= 0.0 and image.max() <= 1.0
    save_figure(fig, tmp_path / "grid.png")
    assert (tmp_path / "grid.png").read_bytes()[:8] == PNG_MAGIC


def test_retrieval_grid_without_labels_and_bad_shapes() -> None:
    image = np.zeros((4, 4))
    fig = plot_retrieval_grid([image], [[image, image]], [[0.0, 1.0]])
    assert len(fig.axes) == 3
    assert {to_hex(ax.spines["left"].get_edgecolor()) for ax in fig.axes} == {QUERY}
    with pytest.raises(DataError, match="distances"):
        plot_retrieval_grid([image], [[image, image]], [[0.0, 1.0, 2.0]])
    with pytest.raises(DataError, match=r"\(H, W\) or \(H, W, 3\)"):
        plot_retrieval_grid([np.zeros((4, 4, 2))], [[image]], [[0.0]])
    with pytest.raises(DataError, match="result_labels"):
        plot_retrieval_grid([image], [[image]], [[0.0]], query_labels=[1], result_labels=[1])


def test_metric_curves_two_panels_mean_over_seeds(tmp_path: Path) -> None:
    seeds = [[(1, 10.0, 0.2), (2, 20.0, 0.4)], [(1, 12.0, 0.4), (2, 22.0, 0.6)]]
    single = [(1, 30.0, 0.5), (2, 60.0, 0.7), (3, 90.0, 0.8)]
    fig = plot_metric_curves({"batch-hard": seeds, "hybrid": single}, "MAP@R", target=0.75)
    assert len(fig.axes) == 2
    by_epoch, by_time = fig.axes
    mean_line = by_epoch.get_lines()[0]
    np.testing.assert_allclose(mean_line.get_xdata(), [1, 2])
    np.testing.assert_allclose(mean_line.get_ydata(), [0.3, 0.5])
    np.testing.assert_allclose(by_time.get_lines()[0].get_xdata(), [11.0, 21.0])
    np.testing.assert_allclose(by_time.get_lines()[1].get_xdata(), [30.0, 60.0, 90.0])
    assert len(by_epoch.collections) == 1  # one min..max band, for the multi-seed strategy
    labels = [line.get_label() for line in by_epoch.get_lines()]
    assert labels == ["batch-hard (mean of 2 seeds)", "hybrid", "target"]
    assert by_time.get_xlabel().startswith("wall-clock seconds")
    save_figure(fig, tmp_path / "strategies.png")
    assert (tmp_path / "strategies.png").read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(DataError, match="at least one strategy"):
        plot_metric_curves({}, "MAP@R")
    with pytest.raises(DataError, match=r"\(epoch, seconds, value\)"):
        plot_metric_curves({"x": [(1, 2.0)]}, "MAP@R")


def test_save_figure_is_atomic_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "keep.png"
    target.write_bytes(b"old")

    class Broken(Figure):
        def savefig(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("render failed")

    with pytest.raises(RuntimeError):
        save_figure(Broken(), target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]

"""Distance distributions: known peaks and overlaps, and per-anchor numbers checked by a loop."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lookalike.mining.distribution import PERCENTILES, distance_distribution


def two_tight_classes(sigma: float = 0.1, gap: float = 5.0, per_class: int = 150,
                      dim: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian classes whose centres lie ``gap`` apart.

    In 64-d, within-class distances concentrate near sigma * sqrt(2 * 64) and between-class
    ones near sqrt(gap^2 + 2 * 64 * sigma^2): two narrow, well-separated peaks.
    """
    rng = np.random.default_rng(0)
    centres = np.zeros((2, dim))
    centres[1, 0] = gap
    labels = np.repeat([0, 1], per_class)
    return centres[labels] + sigma * rng.normal(size=(2 * per_class, dim)), labels


def test_separated_classes_peaks_near_their_centres() -> None:
    x, y = two_tight_classes()
    summary = distance_distribution(x, y, sample_anchors=100)
    assert summary.positive_peak == pytest.approx(0.1 * np.sqrt(128), abs=0.1)
    assert summary.negative_peak == pytest.approx(np.sqrt(25 + 128 * 0.01), abs=0.1)
    assert summary.overlap < 0.01
    assert summary.hard_anchor_share == 0.0
    assert summary.positive_counts.sum() == 100 * 149
    assert summary.negative_counts.sum() == 100 * 150
    assert len(summary.anchors) == 100 and len(set(summary.anchors.tolist())) == 100


def test_identical_distributions_overlap_almost_fully() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(600, 16)), rng.integers(0, 2, 600)  # labels carry no signal
    summary = distance_distribution(x, y, sample_anchors=300, bins=40)
    assert summary.overlap > 0.9
    assert summary.hard_anchor_share > 0.95
    assert summary.positive_peak == pytest.approx(summary.negative_peak, abs=0.3)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_per_anchor_numbers_match_a_loop(metric: str) -> None:
    rng = np.random.default_rng(2)
    y = np.array([0] * 9 + [1] * 6 + [2] * 1 + [3] * 4)
    x = rng.normal(size=(len(y), 5)) + y[:, None]
    summary = distance_distribution(x, y, sample_anchors=12, seed=3, metric=metric, bins=7)
    if metric == "cosine":
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1.0 - unit @ unit.T
    else:
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    all_pos, all_neg, hard = [], [], []
    for row, a in enumerate(summary.anchors):
        pos = [d[a, j] for j in range(len(y)) if j != a and y[j] == y[a]]
        neg = [d[a, j] for j in range(len(y)) if y[j] != y[a]]
        all_pos += pos
        all_neg += neg
        expect = np.percentile(neg, PERCENTILES)
        np.testing.assert_allclose(summary.negative_percentiles[row], expect, atol=1e-5)
        if pos:
            expect = np.percentile(pos, PERCENTILES)
            np.testing.assert_allclose(summary.positive_percentiles[row], expect, atol=1e-5)
            hard.append(min(neg) < np.median(pos))
        else:  # the class of one item: no positives
            assert np.isnan(summary.positive_percentiles[row]).all()
    assert summary.hard_anchor_share == pytest.approx(np.mean(hard))
    assert summary.positive_mean == pytest.approx(np.mean(all_pos), abs=1e-5)
    assert summary.negative_mean == pytest.approx(np.mean(all_neg), abs=1e-5)
    assert summary.bin_edges[0] == pytest.approx(min(all_pos + all_neg), abs=1e-5)
    assert summary.bin_edges[-1] == pytest.approx(max(all_pos + all_neg), abs=1e-5)
    pos_hist = np.histogram(all_pos, bins=summary.bin_edges)[0]
    assert np.abs(summary.positive_counts - pos_hist).sum() <= 2  # edges may round either way
    assert summary.positive_counts.sum() == len(all_pos)


def test_seeded_sample_and_json(tmp_path) -> None:
    x, y = two_tight_classes(per_class=40)
    first = distance_distribution(x, y, sample_anchors=10, seed=7)
    again = distance_distribution(x, y, sample_anchors=10, seed=7)
    other = distance_distribution(x, y, sample_anchors=10, seed=8)
    np.testing.assert_array_equal(first.anchors, again.anchors)
    assert not np.array_equal(first.anchors, other.anchors)
    only_one = distance_distribution(x[:3], [0, 1, 2])  # no anchor has a positive
    data = json.loads(json.dumps(only_one.to_dict(), allow_nan=False))
    assert data["positive_peak"] is None and data["hard_anchor_share"] is None
    assert len(data["positive_counts"]) == 100 and data["percentiles"] == list(PERCENTILES)

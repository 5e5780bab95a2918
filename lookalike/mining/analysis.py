"""What the pools look like against the whole distance distribution (``lookalike analyze``).

Combines the all-pairs summary of a sample of anchors (``distribution``) with the pools:
the distances of the pooled items, and the full positive/negative distance lists of a few
example anchors with their pooled items marked. Everything is plain numbers (JSON-ready),
so ``mine`` can store the analysis inside the pools file and ``analyze --pools`` can draw it
without the embeddings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.distances import pairwise_distance
from lookalike.errors import DataError
from lookalike.mining.distribution import distance_distribution
from lookalike.mining.inputs import prepare_inputs
from lookalike.mining.pools import Pools


@dataclass
class PoolAnalysis:
    """The distribution summary, the pooled distances and a few example anchors."""

    summary: dict[str, Any]
    pooled_positive: list[float]  # distances of every anchor's pooled hard positives
    pooled_negative: list[float]
    examples: list[dict[str, Any]]  # anchor, label, positive/negative/pooled distances

    def headline(self) -> dict[str, Any]:
        """The JSON summary the issue asks for: peaks, overlap, hard-anchor share, pools."""
        s = self.summary
        keys = ("metric", "positive_peak", "negative_peak", "overlap", "hard_anchor_share",
                "positive_mean", "negative_mean")
        return {**{k: s[k] for k in keys},
                "pooled_positive_mean": float(np.mean(self.pooled_positive)),
                "pooled_negative_mean": float(np.mean(self.pooled_negative)),
                "anchors_sampled": len(s["anchors"])}

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> PoolAnalysis:
        return cls(**json.loads(text))


def analyze_pools(embeddings: np.ndarray, labels: np.ndarray, pools: Pools, *,
                  sample_anchors: int = 2000, examples: int = 3, seed: int = 0) -> PoolAnalysis:
    """Distance distribution of ``embeddings`` with the ``pools`` mined from them overlaid."""
    metric = pools.config.distance
    summary = distance_distribution(embeddings, labels, sample_anchors=sample_anchors,
                                    seed=seed, metric=metric)
    x, codes = prepare_inputs(embeddings, labels, metric)
    rng = np.random.default_rng(seed + 1)
    has_both = np.flatnonzero((pools.positive_index[:, 0] >= 0)
                              & (pools.negative_index[:, 0] >= 0))
    chosen = rng.choice(has_both, min(examples, len(has_both)), replace=False)
    example_rows = []
    for anchor in chosen.tolist():
        row = pairwise_distance(x[anchor:anchor + 1].float(), x.float(), metric)[0].numpy()
        same = codes == codes[anchor]
        same[anchor] = False
        other = codes != codes[anchor]
        example_rows.append({
            "anchor": anchor,
            "label": int(np.asarray(labels)[anchor]),
            "positive": row[same].round(4).tolist(),
            "negative": row[other].round(4).tolist(),
            "pooled_positive": _valid(pools.positive_distance[anchor]),
            "pooled_negative": _valid(pools.negative_distance[anchor]),
        })
    return PoolAnalysis(
        summary=summary.to_dict(),
        pooled_positive=_valid(pools.positive_distance),
        pooled_negative=_valid(pools.negative_distance),
        examples=example_rows,
    )


def _valid(distances: np.ndarray) -> list[float]:
    flat = np.asarray(distances, dtype=np.float64).ravel()
    values: list[float] = flat[~np.isnan(flat)].round(4).tolist()
    return values


def load_analysis(pools: Pools, path: str) -> PoolAnalysis:
    """The analysis ``lookalike mine`` stored in a pools file."""
    if "analysis" not in pools.extra:
        raise DataError(f"{path}: this pools file holds no analysis; make it with "
                        "'lookalike mine' or pass --data and --mining-model to analyze")
    return PoolAnalysis.from_json(str(pools.extra["analysis"]))

"""Offline hard-positive / hard-negative pools: what they hold, and their .npz file format.

Every anchor of the N training items keeps the ``hard_positives`` farthest items of its own
class and the ``hard_negatives`` nearest items of the other classes, as embedded by a mining
model (docs/design.md 2.1), optionally after skipping a band of the very hardest of each,
which is often label noise or near-duplicates (FaceNet, Schroff et al. 2015). The batch
sampler later injects items drawn from these pools into each anchor's batch.

This module holds the value types (``PoolConfig``, ``Pools``) and the file they are saved
in; ``lookalike.mining.pool_search.mine_pools`` computes them.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lookalike.distances import METRICS
from lookalike.errors import ConfigError, DataError
from lookalike.files import atomic_path

FORMAT = "lookalike-pools/1"
ARRAYS = ("positive_index", "positive_distance", "negative_index", "negative_distance")
# Config keys of pools files written before PoolConfig took the `lookalike train` flag names.
LEGACY_KEYS = {"k_pos": "hard_positives", "k_neg": "hard_negatives",
               "skip_pos": "positive_band", "skip_neg": "negative_band", "metric": "distance"}


@dataclass(frozen=True)
class PoolConfig:
    """How many hard positives / negatives each anchor keeps, and which band of them.

    The fields are named like the ``lookalike train`` flags. Positives are ranked farthest
    first, negatives nearest first. Before taking its pool, each anchor skips
    ``max(skip_hardest, floor(band x its candidate count))`` of the hardest, but always
    leaves at least one candidate. Bands guard against label noise (docs/design.md 2.3):
    ``skip_hardest=1`` takes the 2nd..(k+1)th farthest positives and nearest negatives.
    """

    hard_positives: int = 5
    hard_negatives: int = 5
    positive_band: float = 0.0
    negative_band: float = 0.0
    skip_hardest: int = 0
    distance: str = "euclidean"

    def __post_init__(self) -> None:
        for name in ("hard_positives", "hard_negatives", "skip_hardest"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"PoolConfig.{name} must be an integer >= 0, got {value!r}")
        for name in ("positive_band", "negative_band"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ConfigError(f"PoolConfig.{name} must be a fraction in [0, 1), got {value!r}")
        if self.distance not in METRICS:
            raise ConfigError(f"PoolConfig.distance {self.distance!r} is not one of {METRICS}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PoolConfig:
        """The config saved in a pools file, also in the older spelling (``k_pos`` ...)."""
        values = dict(values)
        least = {values.pop(key) for key in ("skip_pos_min", "skip_neg_min") if key in values}
        if len(least) > 1:
            raise ConfigError(f"skip_pos_min and skip_neg_min differ ({sorted(least)}); "
                              "one skip_hardest now serves both sides: mine the pools again")
        if least:
            values["skip_hardest"] = least.pop()
        return cls(**{LEGACY_KEYS.get(key, key): value for key, value in values.items()})

    def pool_size(self, positive: bool) -> int:
        """Items kept per anchor on one side."""
        return self.hard_positives if positive else self.hard_negatives

    def skips(self, counts: np.ndarray, positive: bool) -> np.ndarray:
        """Hardest candidates to skip per anchor, given each anchor's candidate count (N,)."""
        band = self.positive_band if positive else self.negative_band
        skip = np.maximum(self.skip_hardest, np.floor(band * counts + 1e-9).astype(np.int64))
        clamped: np.ndarray = np.minimum(skip, np.maximum(counts - 1, 0))
        return clamped


@dataclass
class Pools:
    """Per-anchor pools of item indices (-1 = none) and their distances (nan = none).

    Arrays: positive_index (N, hard_positives) int64, positive_distance (N, hard_positives)
    float32, negative_index (N, hard_negatives) int64, negative_distance (N, hard_negatives)
    float32; rows are anchors in dataset order, hardest first. ``extra`` holds arrays saved
    alongside (e.g. the labels the pools were mined with).
    """

    positive_index: np.ndarray
    positive_distance: np.ndarray
    negative_index: np.ndarray
    negative_distance: np.ndarray
    config: PoolConfig
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.positive_index)

    def problem(self) -> str | None:
        """What makes these arrays inconsistent (shapes, dtypes, -1 vs nan), or None."""
        n = len(self.positive_index)
        for kind, k in (("positive", self.config.hard_positives),
                        ("negative", self.config.hard_negatives)):
            index, dist = getattr(self, f"{kind}_index"), getattr(self, f"{kind}_distance")
            if index.shape != (n, k) or dist.shape != (n, k):
                return (f"{kind} arrays have shapes {index.shape} and {dist.shape}, "
                        f"expected ({n}, {k}) from the config")
            if index.dtype.kind not in "iu" or dist.dtype.kind != "f":
                return f"{kind} arrays have dtypes {index.dtype} and {dist.dtype}"
            if index.size and (index.min() < -1 or index.max() >= n):
                return f"{kind}_index holds values outside [-1, {n})"
            if not np.array_equal(index == -1, np.isnan(dist)):
                return f"{kind}_distance is not nan exactly where {kind}_index is -1"
        return None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write an .npz atomically; the config goes in as a JSON string, no pickles."""
        arrays: dict[str, Any] = {name: np.asarray(getattr(self, name)) for name in ARRAYS}
        for key, value in self.extra.items():
            arrays[f"extra_{key}"] = np.asarray(value)
            if arrays[f"extra_{key}"].dtype.hasobject:
                raise DataError(f"{path}: extra array {key!r} holds Python objects")
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, format=np.array(FORMAT),
                     config=np.array(json.dumps(asdict(self.config))), **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Pools:
        """Read pools written by ``save``; DataError naming the file if anything is off."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except FileNotFoundError:
            raise DataError(f"{path}: no such pools file") from None
        except (OSError, ValueError, EOFError, KeyError, AttributeError, TypeError,
                zipfile.BadZipFile, zlib.error) as exc:
            raise DataError(f"{path}: not a readable pools .npz file ({exc})") from None
        if str(arrays.get("format", "")) != FORMAT:
            raise DataError(f"{path}: not a lookalike pools file (no format {FORMAT!r})")
        missing = [key for key in ("config", *ARRAYS) if key not in arrays]
        if missing:
            raise DataError(f"{path}: pools file lacks arrays {', '.join(missing)}")
        try:
            config = PoolConfig.from_dict(json.loads(str(arrays["config"])))
        except (ValueError, TypeError, AttributeError, ConfigError) as exc:
            raise DataError(f"{path}: bad pools config ({exc})") from None
        extra = {key[6:]: value for key, value in arrays.items() if key.startswith("extra_")}
        pools = cls(positive_index=arrays["positive_index"],
                    positive_distance=arrays["positive_distance"],
                    negative_index=arrays["negative_index"],
                    negative_distance=arrays["negative_distance"], config=config, extra=extra)
        problem = pools.problem()
        if problem:
            raise DataError(f"{path}: {problem}")
        pools.positive_index = pools.positive_index.astype(np.int64)
        pools.negative_index = pools.negative_index.astype(np.int64)
        pools.positive_distance = pools.positive_distance.astype(np.float32)
        pools.negative_distance = pools.negative_distance.astype(np.float32)
        return pools

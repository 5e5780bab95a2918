"""Pools files: an exact round trip, and a one-line DataError naming any bad file."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from lookalike.errors import DataError
from lookalike.mining.pool_search import mine_pools
from lookalike.mining.pools import FORMAT, PoolConfig, Pools


@pytest.fixture
def pools(mixed_clusters) -> Pools:
    x, y = mixed_clusters
    mined = mine_pools(x, y, PoolConfig(hard_positives=2, hard_negatives=3, skip_hardest=1,
                                        distance="cosine"))
    mined.extra["labels"] = y
    return mined


def test_round_trip(tmp_path: Path, pools: Pools) -> None:
    path = tmp_path / "sub" / "pools.npz"
    pools.save(path)
    loaded = Pools.load(path)
    assert loaded.config == pools.config
    for name in ("positive_index", "positive_distance", "negative_index", "negative_distance"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(pools, name))
        assert getattr(loaded, name).dtype == getattr(pools, name).dtype
    np.testing.assert_array_equal(loaded.extra["labels"], pools.extra["labels"])
    assert [p.name for p in path.parent.iterdir()] == ["pools.npz"]  # no temporary left


def rewrite(path: Path, pools: Pools, **changes: np.ndarray) -> None:
    """Write a pools file by hand with some arrays replaced (None drops one)."""
    arrays = {"format": np.array(FORMAT), "config": np.array(json.dumps(asdict(pools.config))),
              "positive_index": pools.positive_index, "positive_distance": pools.positive_distance,
              "negative_index": pools.negative_index, "negative_distance": pools.negative_distance}
    arrays.update(changes)
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})


def test_files_with_the_older_config_names_load(tmp_path: Path, pools: Pools) -> None:
    """Pools files written before PoolConfig took the flag names (k_pos ...) still load."""
    legacy = {"k_pos": 2, "k_neg": 3, "skip_pos": 0.0, "skip_neg": 0.0, "skip_pos_min": 1,
              "skip_neg_min": 1, "metric": "cosine"}
    path = tmp_path / "legacy.npz"
    rewrite(path, pools, config=np.array(json.dumps(legacy)))
    assert Pools.load(path).config == pools.config


@pytest.mark.parametrize("changes, message", [
    ({"negative_index": None}, "lacks arrays negative_index"),
    ({"format": np.array("something-else/1")}, "not a lookalike pools file"),
    ({"config": np.array("{not json")}, "bad pools config"),
    ({"config": np.array(json.dumps({"hard_positives": -2}))}, "bad pools config"),
    ({"config": np.array(json.dumps({"skip_pos_min": 1, "skip_neg_min": 2}))}, "differ"),
    ({"config": np.array("[1, 2]")}, "bad pools config"),
    ({"positive_index": np.zeros((3, 2), np.int64)}, "shapes"),
    ({"negative_distance": np.full((280, 3), np.nan, np.float32)}, "nan exactly where"),
    ({"positive_index": np.full((280, 2), 10_000)}, "outside"),
    ({"positive_distance": np.zeros((280, 2), np.int32)}, "dtypes"),
])
def test_bad_contents_raise_data_error(tmp_path: Path, pools: Pools, changes: dict,
                                       message: str) -> None:
    path = tmp_path / "bad.npz"
    rewrite(path, pools, **changes)
    with pytest.raises(DataError, match=message) as caught:
        Pools.load(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_unreadable_files_raise_data_error(tmp_path: Path, pools: Pools) -> None:
    with pytest.raises(DataError, match="no such pools file"):
        Pools.load(tmp_path / "missing.npz")
    text = tmp_path / "text.npz"
    text.write_text("hello")
    truncated = tmp_path / "truncated.npz"
    pools.save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    plain = tmp_path / "plain.npy"
    np.save(plain, np.zeros(3))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array(FORMAT), config=np.array([{"k_pos": 1}], dtype=object))
    for path in (text, truncated, plain, pickled):
        with pytest.raises(DataError, match=str(path.name)):
            Pools.load(path)


def test_object_extras_are_refused(tmp_path: Path, pools: Pools) -> None:
    pools.extra["names"] = np.array([{"a": 1}], dtype=object)
    with pytest.raises(DataError, match="names"):
        pools.save(tmp_path / "pools.npz")
    assert not (tmp_path / "pools.npz").exists()

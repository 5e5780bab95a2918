"""Training state: optimizer and RNG states survive a save/load exactly, without pickle."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lookalike.errors import CheckpointError
from lookalike.models.checkpoint import load_training_state, save_training_state


def assert_same(a: object, b: object) -> None:
    """Deep equality that also checks container types, dict key types and tensor dtypes."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b or (a != a and b != b)  # NaN equals NaN here


def make_trained() -> tuple[nn.Module, torch.optim.Optimizer, torch.Generator]:
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.95))
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(8, 4, generator=generator)).square().sum().backward()
        optimizer.step()
    return model, optimizer, generator


def test_adam_and_rng_round_trip_resumes_identically(tmp_path: Path) -> None:
    model, optimizer, generator = make_trained()
    state = {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
             "generator": generator.get_state(), "epoch": 3, "best": float("nan"),
             "python_rng": random.Random(5).getstate(),
             "numpy_rng": np.random.default_rng(5).bit_generator.state,
             "progress": {"batches_done": 7, "note": None, "flags": [True, 2.5]}}
    save_training_state(tmp_path / "state", state)
    loaded = load_training_state(tmp_path / "state")
    assert_same(loaded, state)  # int keys of optimizer["state"], tuple betas, uint8 RNG states

    clone = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    clone.load_state_dict(model.state_dict())
    resumed = torch.optim.Adam(clone.parameters(), lr=0.5)
    resumed.load_state_dict(loaded["optimizer"])
    twin = torch.Generator().set_state(loaded["generator"])
    x, y = torch.randn(8, 4, generator=generator), torch.randn(8, 4, generator=twin)
    assert torch.equal(x, y)
    for net, opt, batch in ((model, optimizer, x), (clone, resumed, y)):
        opt.zero_grad()
        net(batch).square().sum().backward()
        opt.step()
    for p, q in zip(model.parameters(), clone.parameters(), strict=True):
        assert torch.equal(p, q)

    rng = torch.get_rng_state()
    torch.set_rng_state(loaded["torch_rng"])
    first = torch.rand(3)
    torch.set_rng_state(loaded["torch_rng"])
    assert torch.equal(torch.rand(3), first)
    torch.set_rng_state(rng)
    python = random.Random()
    python.setstate(loaded["python_rng"])
    assert python.random() == random.Random(5).random()


def test_tensors_use_dotted_keys_and_files_are_not_pickle(tmp_path: Path) -> None:
    _, optimizer, _ = make_trained()
    save_training_state(tmp_path / "run.safetensors", {"optimizer": optimizer.state_dict(),
                                                       "a.b": torch.ones(1),
                                                       "a": {"b": torch.zeros(1)}})
    from safetensors import safe_open

    with safe_open(str(tmp_path / "run.safetensors"), framework="pt") as handle:
        keys = set(handle.keys())
    assert {"optimizer.state.0.exp_avg", "optimizer.state.0.step", "a.b", "a.b#1"} <= keys
    for file in (tmp_path / "run.safetensors", tmp_path / "run.json"):
        assert file.read_bytes()[:1] != b"\x80"
    json.loads((tmp_path / "run.json").read_text())
    loaded = load_training_state(tmp_path / "run.json")
    assert torch.equal(loaded["a.b"], torch.ones(1)) and torch.equal(loaded["a"]["b"],
                                                                     torch.zeros(1))


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_training_state(tmp_path, {"x": torch.arange(3)})

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("unpickling attempted")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    assert torch.equal(load_training_state(tmp_path)["x"], torch.arange(3))


def test_unsupported_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"cannot save 'opt\.fn'.*function is not"):
        save_training_state(tmp_path, {"opt": {"fn": lambda x: x}})
    with pytest.raises(CheckpointError, match="dict keys must be scalars"):
        save_training_state(tmp_path, {"k": {(1, 2): 3}})
    assert not (tmp_path / "training_state.json").exists()


def test_missing_damaged_and_mixed_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"training state not found: .*training_state"):
        load_training_state(tmp_path / "none")
    save_training_state(tmp_path / "a", {"x": torch.ones(2)})
    save_training_state(tmp_path / "b", {"x": torch.ones(2)})
    (tmp_path / "a" / "training_state.safetensors").write_bytes(
        (tmp_path / "b" / "training_state.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="come from different saves"):
        load_training_state(tmp_path / "a")
    (tmp_path / "b" / "training_state.json").write_text("{")
    with pytest.raises(CheckpointError, match="is damaged: not valid JSON"):
        load_training_state(tmp_path / "b")
    data = (tmp_path / "a" / "training_state.safetensors").read_bytes()
    (tmp_path / "a" / "training_state.safetensors").write_bytes(data[:20])
    with pytest.raises(CheckpointError, match="is damaged: unreadable safetensors"):
        load_training_state(tmp_path / "a")

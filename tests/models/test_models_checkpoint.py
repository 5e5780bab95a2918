"""Checkpoints: round trip, fingerprint, one-line errors, and never a pickle."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from lookalike.errors import CheckpointError, ConfigError
from lookalike.models import (
    Embedder,
    EmbedderConfig,
    build_embedder,
    load_checkpoint,
    model_fingerprint,
    save_checkpoint,
)

CLASSES = ["shirt", "shoe", "bag"]


def save(model: Embedder, path: Path, **kwargs: object) -> Path:
    return save_checkpoint(path, model, class_names=CLASSES,
                           training_config={"lr": 0.01, "out": Path("runs/x")}, **kwargs)


def perturb(model: Embedder) -> None:
    with torch.no_grad():
        model.head.proj.weight[0, 0] += 1e-3


def test_round_trip_gives_the_same_outputs(tiny_model: Embedder, tmp_path: Path) -> None:
    tiny_model.train()
    tiny_model(torch.rand(8, 1, 16, 16))  # move the batch-norm statistics off their init
    tiny_model.eval()
    path = save(tiny_model, tmp_path / "ckpt", extra_state={"epoch": 3})
    assert sorted(p.name for p in path.iterdir()) == ["model.json", "model.safetensors"]
    loaded, info = load_checkpoint(path)
    loaded.eval()
    x = torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), tiny_model(x))
    assert info.config == tiny_model.config and info.class_names == CLASSES
    assert info.training_config == {"lr": 0.01, "out": "runs/x"}
    assert info.extra_state == {"epoch": 3}
    assert info.lookalike_version == importlib.metadata.version("lookalike")
    assert info.fingerprint == model_fingerprint(tiny_model) == model_fingerprint(loaded)


def test_file_pair_naming(tiny_model: Embedder, tmp_path: Path) -> None:
    save(tiny_model, tmp_path / "best.safetensors")
    assert (tmp_path / "best.json").is_file() and (tmp_path / "best.safetensors").is_file()
    loaded, _ = load_checkpoint(tmp_path / "best.json")
    assert model_fingerprint(loaded) == model_fingerprint(tiny_model)


def test_fingerprint_changes_with_weights_and_config(tiny_model: Embedder,
                                                     tiny_config: Callable[..., EmbedderConfig]
                                                     ) -> None:
    before = model_fingerprint(tiny_model)
    assert len(before) == 16 and before == model_fingerprint(tiny_model)
    perturb(tiny_model)
    assert model_fingerprint(tiny_model) != before
    twin = build_embedder(tiny_config(), seed=1)
    other = build_embedder(tiny_config(normalize=False), seed=1)  # same weights, other config
    assert model_fingerprint(twin) != model_fingerprint(other)


def test_files_hold_no_pickle_and_loading_never_unpickles(
        tiny_model: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save(tiny_model, tmp_path / "ckpt")
    for file in path.iterdir():
        head = file.read_bytes()[:2]
        assert head[:1] != b"\x80" and head != b"PK"  # pickle protocol 2+ / torch.save zip
    json.loads((path / "model.json").read_text())

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("unpickling attempted")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    load_checkpoint(path)


def test_missing_files(tiny_model: Embedder, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*nowhere.*model\.json"):
        load_checkpoint(tmp_path / "nowhere")
    path = save(tiny_model, tmp_path / "ckpt")
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing"):
        load_checkpoint(path)


def test_corrupt_json(tiny_model: Embedder, tmp_path: Path) -> None:
    path = save(tiny_model, tmp_path / "ckpt")
    text = (path / "model.json").read_text()
    (path / "model.json").write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match=r"model\.json is damaged: not valid JSON") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)
    (path / "model.json").write_text('{"format": "something-else"}')
    with pytest.raises(CheckpointError, match="not a lookalike checkpoint"):
        load_checkpoint(path)


def test_truncated_safetensors(tiny_model: Embedder, tmp_path: Path) -> None:
    path = save(tiny_model, tmp_path / "ckpt")
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors is damaged"):
        load_checkpoint(path)


def test_weights_from_another_architecture(tiny_model: Embedder, tmp_path: Path,
                                           tiny_config: Callable[..., EmbedderConfig]) -> None:
    path = save(tiny_model, tmp_path / "ckpt")
    other = save(build_embedder(tiny_config(embedding_dim=5, backbone_options={"widths": [4]})),
                 tmp_path / "other")
    (path / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"model\.safetensors was saved from a different "
                       r"model: missing keys backbone\.features\.4\.weight.*; shape mismatch "
                       r"for head\.proj\.bias \(\(5,\) vs \(8,\)\)"):
        load_checkpoint(path)


def test_weights_of_the_same_shape_from_another_save(tiny_model: Embedder, tmp_path: Path) -> None:
    path = save(tiny_model, tmp_path / "ckpt")
    perturb(tiny_model)
    newer = save(tiny_model, tmp_path / "newer")
    (path / "model.safetensors").write_bytes((newer / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"does not match model\.json.*mixed saves"):
        load_checkpoint(path)


def test_expect_refuses_another_architecture(tiny_model: Embedder, tmp_path: Path,
                                             tiny_config: Callable[..., EmbedderConfig]) -> None:
    path = save(tiny_model, tmp_path / "ckpt")
    load_checkpoint(path, expect=tiny_config())
    with pytest.raises(CheckpointError, match=r"holds another model than expected: "
                                              r"embedding_dim: 8 != 32"):
        load_checkpoint(path, expect=tiny_config(embedding_dim=32))


def test_save_refuses_a_config_that_is_not_the_models(
        tiny_model: Embedder, tmp_path: Path, tiny_config: Callable[..., EmbedderConfig]) -> None:
    with pytest.raises(CheckpointError, match="config differs"):
        save_checkpoint(tmp_path / "c", tiny_model, tiny_config(embedding_dim=3), class_names=[])
    with pytest.raises(CheckpointError, match="not a JSON value"):
        save(tiny_model, tmp_path / "c", extra_state={"t": torch.zeros(1)})
    assert not (tmp_path / "c" / "model.json").exists()


def test_custom_backbone_checkpoint(tmp_path: Path) -> None:
    def make() -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU())

    config = EmbedderConfig(backbone="my-conv", embedding_dim=4, input_size=12)
    model = build_embedder(config, backbone=make())
    path = save(model, tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match=r"cannot rebuild .*unknown backbone 'my-conv'"):
        load_checkpoint(path)
    loaded, _ = load_checkpoint(path, backbone=make())
    assert model_fingerprint(loaded) == model_fingerprint(model)


def test_the_distance_is_saved_and_checked(tiny_model: Embedder, tmp_path: Path,
                                           tiny_config: Callable[..., EmbedderConfig]) -> None:
    path = save(build_embedder(tiny_config(distance="cosine"), seed=1), tmp_path / "cosine")
    assert json.loads((path / "model.json").read_text())["embedder"]["distance"] == "cosine"
    _, info = load_checkpoint(path)
    assert info.config.distance == "cosine"
    # same weights, another distance: another model for an index (its distances differ)
    assert info.fingerprint != model_fingerprint(tiny_model)
    with pytest.raises(ConfigError, match="distance 'hamming' is not a registered distance"):
        tiny_config(distance="hamming")


def test_a_checkpoint_from_before_the_distance_field_loads_as_euclidean(
        tiny_model: Embedder, tmp_path: Path) -> None:
    path = save(tiny_model, tmp_path / "ckpt")
    document = json.loads((path / "model.json").read_text())
    assert document["embedder"].pop("distance") == "euclidean"
    assert document["embedder"].pop("mirror_average") is False  # added later still
    (path / "model.json").write_text(json.dumps(document))  # as lookalike wrote it before
    _, info = load_checkpoint(path)  # the stored fingerprint still matches
    assert info.config.distance == "euclidean"
    assert info.fingerprint == document["fingerprint"] == fingerprint_before_distance(tiny_model)


def fingerprint_before_distance(model: Embedder) -> str:
    """The fingerprint as lookalike computed it before EmbedderConfig had ``distance`` (and
    ``mirror_average``, added after it)."""
    later = ("distance", "mirror_average")
    config = {k: v for k, v in model.config.to_dict().items() if k not in later}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]

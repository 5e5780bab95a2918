"""Model checkpoints: ``model.safetensors`` (weights) + ``model.json`` (what they are).

Loading never unpickles: weights come from safetensors, everything else from JSON. The
JSON names the architecture (an EmbedderConfig), so a checkpoint rebuilds its own model;
a fingerprint over config and weights lets indexes refuse vectors from another model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lookalike.errors import CheckpointError, ConfigError
from lookalike.models.config import EmbedderConfig
from lookalike.models.embedder import Embedder, build_embedder
from lookalike.models.filepair import pair_paths, read_json, read_tensors, write_pair
from lookalike.models.state import load_training_state, save_training_state

__all__ = ["CheckpointInfo", "load_checkpoint", "load_training_state", "model_fingerprint",
           "save_checkpoint", "save_training_state"]

FORMAT = "lookalike-checkpoint"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckpointInfo:
    """Everything in ``model.json`` besides the weights."""

    path: Path
    config: EmbedderConfig
    class_names: list[str]
    training_config: dict[str, Any]
    lookalike_version: str
    fingerprint: str
    extra_state: dict[str, Any] = field(default_factory=dict)


def model_fingerprint(model: Embedder) -> str:
    """Short sha256 hex over the config and every weight: equal iff the same model.

    The config enters as ``fingerprint_fields()``: a field added later (``distance``) counts
    only when it differs from what older checkpoints meant, so their fingerprints hold.
    """
    fields = model.config.fingerprint_fields()
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def save_checkpoint(path: str | os.PathLike[str], model: Embedder,
                    config: EmbedderConfig | None = None, *, class_names: list[str],
                    training_config: dict[str, Any] | None = None,
                    extra_state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint folder (or ``x.safetensors`` + ``x.json`` pair) atomically.

    Args:
        path: a folder, or the ``.safetensors`` / ``.json`` path of a named pair.
        model: the Embedder to save.
        config: its architecture; defaults to ``model.config`` and must equal it.
        class_names: label names, index i for label i.
        training_config: the resolved training configuration (JSON values).
        extra_state: small JSON values to keep alongside (epoch, metrics...).
    Returns the path to pass to :func:`load_checkpoint`.
    """
    config = model.config if config is None else config
    tensor_path, json_path = pair_paths(path, "model")
    if config != model.config:
        raise CheckpointError(f"not saving {json_path}: config differs from the model's: "
                              + "; ".join(config.differences(model.config)))
    fingerprint = model_fingerprint(model)
    document = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "lookalike_version": _lookalike_version(), "fingerprint": fingerprint,
        "embedder": config.to_dict(), "class_names": [str(name) for name in class_names],
        "training_config": _jsonable(training_config or {}, json_path),
        "extra_state": _jsonable(extra_state or {}, json_path),
    }
    write_pair(tensor_path, json_path, model.state_dict(), document,
               metadata={"format": "pt", "fingerprint": fingerprint})
    return Path(path)


def _lookalike_version() -> str:
    try:
        from lookalike import __version__
    except ImportError:  # a stale editable install can shadow lookalike/__init__.py
        try:
            return importlib.metadata.version("lookalike")
        except importlib.metadata.PackageNotFoundError:
            return "unknown"
    return __version__


def _jsonable(value: Any, json_path: Path) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"not saving {json_path}: {exc}") from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def load_checkpoint(path: str | os.PathLike[str], *, expect: EmbedderConfig | None = None,
                    backbone: nn.Module | None = None,
                    device: str | torch.device = "cpu") -> tuple[Embedder, CheckpointInfo]:
    """Rebuild the model a checkpoint describes and load its weights (no unpickling).

    Args:
        path: what :func:`save_checkpoint` returned (folder, or either file of a pair).
        expect: refuse a checkpoint whose architecture differs from this one.
        backbone: the user's module, for checkpoints of a custom backbone.
        device: where to put the model.
    Raises CheckpointError (one line, naming the file) for missing or damaged files, a
    different architecture than expected, or weights that do not fit their JSON.
    """
    tensor_path, json_path = pair_paths(path, "model")
    document = read_json(json_path, "checkpoint")
    if document.get("format") != FORMAT:
        raise CheckpointError(f"{json_path} is not a lookalike checkpoint")
    try:
        config = EmbedderConfig.from_dict(document["embedder"])
    except (KeyError, ConfigError) as exc:
        raise CheckpointError(f"{json_path} is damaged: bad embedder config ({exc})") from exc
    if expect is not None and expect != config:
        raise CheckpointError(f"{json_path} holds another model than expected: "
                              + "; ".join(config.differences(expect)))
    weights, _ = read_tensors(tensor_path, "checkpoint weights")
    try:
        model = build_embedder(config, pretrained=False, backbone=backbone)
    except ConfigError as exc:
        raise CheckpointError(f"cannot rebuild the model of {json_path}: {exc}") from exc
    problems = _mismatches(model.state_dict(), weights)
    if problems:
        raise CheckpointError(f"{tensor_path} was saved from a different model: {problems}")
    model.load_state_dict(weights, strict=True)
    fingerprint = model_fingerprint(model)
    if document.get("fingerprint") != fingerprint:
        raise CheckpointError(f"{tensor_path} does not match {json_path.name} (fingerprint "
                              f"{fingerprint} != {document.get('fingerprint')}): mixed saves?")
    info = CheckpointInfo(
        path=Path(path), config=config, class_names=list(document.get("class_names", [])),
        training_config=dict(document.get("training_config", {})),
        lookalike_version=str(document.get("lookalike_version", "unknown")),
        fingerprint=fingerprint, extra_state=dict(document.get("extra_state", {})))
    return model.to(device), info


def _mismatches(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """'missing keys a, b; unexpected keys c; shape mismatch for d (x vs y)' or ''."""
    def names(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")

    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [f"{k} ({tuple(found[k].shape)} vs {tuple(v.shape)})" for k, v in
              sorted(expected.items()) if k in found and found[k].shape != v.shape]
    parts = [f"missing keys {names(missing)}" if missing else "",
             f"unexpected keys {names(unexpected)}" if unexpected else "",
             f"shape mismatch for {names(shapes)}" if shapes else ""]
    return "; ".join(part for part in parts if part)

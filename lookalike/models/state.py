"""Training state (optimizer, RNG states, epoch) saved without pickle, to resume runs.

Tensors go to ``training_state.safetensors`` under dotted keys (``optimizer.state.0.exp_avg``);
the JSON file keeps the structure with references to them, so nested dicts with int keys
(optimizer states), tuples (Adam's betas, Python's ``random.getstate()``) and numpy arrays
come back with their exact types.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import numpy as np
import torch

from lookalike.errors import CheckpointError
from lookalike.models.filepair import pair_paths, read_json, read_tensors, write_pair

FORMAT = "lookalike-training-state"
_TAGS = ("__tensor__", "__ndarray__", "__tuple__", "__dict__")
_SCALARS = (bool, int, float, str, type(None))


def save_training_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Atomically write ``state`` (tensors, numbers, strings, None, lists, tuples, dicts).

    Args:
        path: a folder (gets ``training_state.safetensors`` + ``.json``) or either file's path.
        state: e.g. ``{"epoch": 3, "optimizer": opt.state_dict(),
            "torch_rng": torch.get_rng_state()}``.
    """
    tensor_path, json_path = pair_paths(path, "training_state")
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, "", tensors, json_path)
    save_id = secrets.token_hex(8)  # ties the JSON to the tensors written with it
    write_pair(tensor_path, json_path, tensors,
               {"format": FORMAT, "save_id": save_id, "state": tree},
               metadata={"format": "pt", "save_id": save_id})


def load_training_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read what :func:`save_training_state` wrote (tensors on CPU); never unpickles."""
    tensor_path, json_path = pair_paths(path, "training_state")
    document = read_json(json_path, "training state")
    if document.get("format") != FORMAT or "state" not in document:
        raise CheckpointError(f"{json_path} is not a lookalike training state")
    tensors, metadata = read_tensors(tensor_path, "training state tensors")
    if metadata.get("save_id") != document.get("save_id"):
        raise CheckpointError(f"{tensor_path} and {json_path.name} come from different saves")
    try:
        state = _decode(document["state"], tensors, json_path)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{json_path} is damaged: {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{json_path} is damaged: the state is not a mapping")
    return state


def _encode(value: Any, key: str, tensors: dict[str, torch.Tensor], where: Any) -> Any:
    """JSON tree for ``value``; tensors and arrays are moved into ``tensors`` under ``key``."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        name, n = key or "value", 1
        while name in tensors:  # dotted keys can collide ("a.b" vs {"a": {"b"}})
            name, n = f"{key}#{n}", n + 1
        tag = "__tensor__" if isinstance(value, torch.Tensor) else "__ndarray__"
        try:
            tensors[name] = (value if isinstance(value, torch.Tensor)
                             else torch.from_numpy(value.copy()))
        except TypeError as exc:
            raise CheckpointError(f"cannot save {key!r} in {where}: {exc}") from exc
        return {tag: name}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, _SCALARS):
        return value
    sub = f"{key}." if key else ""
    if isinstance(value, (list, tuple)):
        items = [_encode(v, f"{sub}{i}", tensors, where) for i, v in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, f"{sub}{k}", tensors, where) for k, v in value.items()}
        if not all(isinstance(k, _SCALARS) for k in value):
            raise CheckpointError(f"cannot save {key!r} in {where}: dict keys must be scalars")
        return {"__dict__": [[k, _encode(v, f"{sub}{k}", tensors, where)]
                             for k, v in value.items()]}
    raise CheckpointError(f"cannot save {key!r} in {where}: {type(value).__name__} is not "
                          "a tensor, array, number, string, None, list, tuple or dict")


def _decode(tree: Any, tensors: dict[str, torch.Tensor], where: Any) -> Any:
    """Inverse of :func:`_encode`."""
    if isinstance(tree, list):
        return [_decode(v, tensors, where) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if len(tree) == 1 and next(iter(tree)) in _TAGS:
        tag, body = next(iter(tree.items()))
        if tag in ("__tensor__", "__ndarray__"):
            if body not in tensors:
                raise CheckpointError(f"{where} refers to tensor {body!r}, which is missing")
            return tensors[body] if tag == "__tensor__" else tensors[body].numpy()
        if tag == "__tuple__":
            return tuple(_decode(v, tensors, where) for v in body)
        return {k: _decode(v, tensors, where) for k, v in body}
    return {k: _decode(v, tensors, where) for k, v in tree.items()}

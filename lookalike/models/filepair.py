"""Safetensors + JSON file pairs: tensors where no pickle can hide, everything else readable.

Checkpoints and training states are both stored this way. A pair is either a folder holding
``<stem>.safetensors`` and ``<stem>.json``, or two sibling files named by the caller
(``run/best.safetensors`` + ``run/best.json``). Each file is written atomically; the
safetensors file first, so a JSON file never describes weights that were not written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from lookalike.errors import CheckpointError
from lookalike.files import atomic_path, write_json

_SUFFIXES = (".safetensors", ".json")


def pair_paths(path: str | os.PathLike[str], stem: str) -> tuple[Path, Path]:
    """(tensors file, JSON file) for a folder or for either file of a named pair."""
    path = Path(path)
    if path.suffix in _SUFFIXES:
        return path.with_suffix(".safetensors"), path.with_suffix(".json")
    return path / f"{stem}.safetensors", path / f"{stem}.json"


def write_pair(tensor_path: Path, json_path: Path, tensors: dict[str, torch.Tensor],
               document: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Atomically write ``tensors`` (contiguous CPU copies, no shared memory) and ``document``."""
    plain = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in tensors.items()}
    with atomic_path(tensor_path) as tmp:
        save_file(plain, str(tmp), metadata=metadata)
    write_json(json_path, document)


def read_json(path: Path, what: str) -> dict[str, Any]:
    """Parse a JSON object, with one-line errors naming ``path``."""
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path} is missing")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is damaged: not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise CheckpointError(f"{path} is damaged: expected a JSON object")
    return document


def read_tensors(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load every tensor (on CPU) and the string metadata of a safetensors file."""
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path} is missing")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            # a safe_open handle, not a dict: it is not iterable
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is damaged: unreadable safetensors ({exc})") from exc
    return tensors, metadata

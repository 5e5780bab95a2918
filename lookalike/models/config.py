"""EmbedderConfig: everything needed to rebuild an embedder's architecture, and nothing else.

It is written into every checkpoint's ``model.json`` and hashed into the model fingerprint,
so it holds JSON values only (tuples become lists on the way out and back in).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from lookalike.distances import DISTANCES
from lookalike.errors import ConfigError

ADDED_LATER: dict[str, Any] = {"distance": "euclidean", "mirror_average": False}
"""Fields added after the first checkpoints were written, with the value a checkpoint
without them means. :meth:`EmbedderConfig.fingerprint_fields` leaves such a field out
while it holds that value, so older checkpoints, and the index folders built from them,
keep their fingerprints."""


@dataclass
class EmbedderConfig:
    """Architecture and input convention of an Embedder.

    Attributes:
        backbone: registered backbone name ("small-cnn", "efficientnet-lite0") or a label
            for a user's module (then pass the module to ``build_embedder``).
        embedding_dim: size D of the embeddings.
        input_size: image side the model works at; other sizes are resized to it.
        in_channels: channels of the data (1 grayscale, 3 RGB); the Embedder converts
            to what the backbone needs.
        mean, std: per-channel normalisation of [0, 1] pixels after channel conversion,
            one value (broadcast) or one per backbone channel. 0.5/0.5 maps pixels to
            [-1, 1], which is also EfficientNet-Lite's own convention (127/128 on 0-255).
        normalize: L2-normalise the embeddings.
        head_batchnorm: BatchNorm1d after the head's projection.
        backbone_options: extra backbone arguments, e.g. ``{"widths": [32, 64, 128]}``.
        distance: the registered distance (lookalike.distances) the model was trained
            with: validation ranks by it, an index searches by it and reports it.
        mirror_average: at inference (eval mode), embed each image and its mirror image and
            average the two, so left-right mirrors embed alike and the flip noise the model
            kept despite training on flips cancels (README, "The demo"); training steps embed
            one view. It doubles the cost of an embedding.
    """

    backbone: str = "small-cnn"
    embedding_dim: int = 64
    input_size: int = 28
    in_channels: int = 1
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    normalize: bool = True
    head_batchnorm: bool = False
    backbone_options: dict[str, Any] = field(default_factory=dict)
    distance: str = "euclidean"
    mirror_average: bool = False

    def __post_init__(self) -> None:
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        if self.embedding_dim < 1 or self.input_size < 1 or self.in_channels < 1:
            raise ConfigError(f"embedding_dim, input_size and in_channels must be >= 1, got "
                              f"{self.embedding_dim}, {self.input_size}, {self.in_channels}")
        if not self.mean or len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise ConfigError(f"mean and std need the same length and std > 0, got "
                              f"mean={self.mean}, std={self.std}")
        if self.distance not in DISTANCES:
            raise ConfigError(f"distance {self.distance!r} is not a registered distance; "
                              f"choose one of {', '.join(DISTANCES.names())}")
        try:  # JSON round trip: lists, not tuples, so that a loaded config compares equal
            self.backbone_options = json.loads(json.dumps(dict(self.backbone_options)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"backbone_options must be JSON values: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists)."""
        out = dataclasses.asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    def fingerprint_fields(self) -> dict[str, Any]:
        """What the model fingerprint hashes: :meth:`to_dict` less the ``ADDED_LATER``
        fields that hold the value their absence meant."""
        out = self.to_dict()
        for name, implied in ADDED_LATER.items():
            if out[name] == implied:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: object) -> EmbedderConfig:
        """Rebuild from :meth:`to_dict` output (read from JSON, so checked to be an object);
        unknown keys are an error, not ignored."""
        if not isinstance(data, dict):
            kind = type(data).__name__
            raise ConfigError(f"an embedder config must be a JSON object, got {kind}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown embedder config keys: {', '.join(unknown)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad embedder config: {exc}") from exc

    def differences(self, other: EmbedderConfig) -> list[str]:
        """Fields that differ, as ``name: mine != theirs`` (empty when equal)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]!r} != {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]

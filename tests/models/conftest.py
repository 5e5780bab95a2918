"""Fixtures for the models tests: tiny embedders and a fake dataset with the data API."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import pytest
import torch

from lookalike.models import Embedder, EmbedderConfig, build_embedder


class FakeDataset:
    """``len()`` and ``batch(indices)`` like lookalike.data's ImageDataset; records its calls."""

    def __init__(self, n: int, channels: int = 1, size: int = 16, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, channels, size, size, generator=generator)
        self.labels = torch.arange(n) % 3
        self.calls: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices: Sequence[int] | torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        self.calls.append(idx.clone())
        return self.images[idx], self.labels[idx], idx


def tiny_config_value(**changes: object) -> EmbedderConfig:
    base = EmbedderConfig(backbone="small-cnn", embedding_dim=8, input_size=16, in_channels=1,
                          backbone_options={"widths": [4, 8]})
    return EmbedderConfig.from_dict({**base.to_dict(), **changes})


@pytest.fixture
def tiny_config() -> Callable[..., EmbedderConfig]:
    """A factory of small-cnn configs small enough for a millisecond forward pass."""
    return tiny_config_value


@pytest.fixture(scope="session")
def _tiny_model_master() -> Embedder:
    return build_embedder(tiny_config_value(), seed=1)


@pytest.fixture
def tiny_model(_tiny_model_master: Embedder) -> Embedder:
    """A fresh copy of one session-built tiny embedder (tests may change it freely)."""
    return copy.deepcopy(_tiny_model_master)


@pytest.fixture
def fake_dataset() -> Callable[..., FakeDataset]:
    return FakeDataset

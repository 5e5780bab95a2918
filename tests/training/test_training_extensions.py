"""Each extension point takes a toy through one registry line and trains with it
(docs/extending.md shows the same code)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from lookalike.cli import main
from lookalike.losses.batch import batch_distances
from lookalike.losses.registry import LOSSES, LossSettings
from lookalike.losses.stats import triplet_stats
from lookalike.mining.online import SELECTORS
from lookalike.models.factory import BACKBONES, BackboneSpec
from lookalike.types import LossOutput, Triplets

from ..conftest import TINY_TRAIN


class CentroidLoss(nn.Module):
    """A toy loss: pull every embedding to its class mean in the batch."""

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        _, dist = batch_distances("CentroidLoss", embeddings, labels, "euclidean")
        same = labels[:, None] == labels[None, :]
        means = (same.float() @ embeddings) / same.sum(dim=1, keepdim=True)
        loss = (embeddings - means).pow(2).sum(dim=1).mean()
        d_same, d_other = dist[same], dist[~same]
        return LossOutput(loss, triplet_stats(d_same[: len(d_other)], d_other[: len(d_same)],
                                              torch.ones(min(len(d_same), len(d_other)))))


def farthest_negative(dist: torch.Tensor, labels: torch.Tensor, margin: float) -> Triplets:
    """A toy selector: per anchor, its first positive and its *farthest* negative."""
    same = labels[:, None] == labels[None, :]
    same.fill_diagonal_(False)
    anchors = torch.nonzero(same.any(dim=1)).flatten()
    positive = same[anchors].float().argmax(dim=1)
    negative = torch.where(same[anchors] | torch.eye(len(labels), dtype=torch.bool)[anchors],
                           -torch.inf, dist[anchors]).argmax(dim=1)
    return Triplets(anchors, positive, negative)


class TinyBackbone(nn.Module):
    """A toy backbone honouring the contract: feature_dim, in_channels, (B, C, H, W) -> (B, F)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 6, 3, padding=1)
        self.feature_dim, self.in_channels = 6, in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


@pytest.fixture
def toys() -> Iterator[None]:
    LOSSES.register("toy-centroid", lambda settings: CentroidLoss())
    SELECTORS.register("toy-farthest", farthest_negative)
    BACKBONES.register("toy-conv", BackboneSpec(
        lambda in_channels, pretrained, input_size: TinyBackbone(in_channels or 1)))
    yield
    LOSSES.unregister("toy-centroid")
    SELECTORS.unregister("toy-farthest")
    BACKBONES.unregister("toy-conv")


@pytest.mark.parametrize("flags", [["--loss", "toy-centroid"], ["--mining", "toy-farthest"],
                                   ["--backbone", "toy-conv"],
                                   ["--mining", "hybrid", "--hybrid-selection", "toy-farthest"]])
def test_a_registered_toy_trains_from_the_command_line(toys: None, tiny_folder: Path,
                                                       tmp_path: Path, flags: list[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_folder), "--out", str(run), *TINY_TRAIN,
                 "--epochs", "2", *flags]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["train_loss"] >= 0 for r in records)
    if "--backbone" in flags:
        described = json.loads((run / "last" / "model.json").read_text())
        assert described["embedder"]["backbone"] == "toy-conv"


def test_an_unregistered_name_lists_the_registered_ones(capsys: pytest.CaptureFixture[str],
                                                        tiny_folder: Path) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--data", str(tiny_folder), "--out", "x", "--loss", "toy-centroid"])
    assert "choose from 'triplet', 'contrastive'" in capsys.readouterr().err


def test_loss_settings_reach_the_loss() -> None:
    loss = LOSSES.get("triplet")(LossSettings(selection="batch-hard", margin=0.3,
                                              distance="cosine"))
    assert (loss.selection, loss.margin, loss.distance) == ("batch-hard", 0.3, "cosine")

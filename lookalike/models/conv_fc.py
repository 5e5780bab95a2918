"""A two-convolution, fully connected backbone for small centred images (Fashion-MNIST).

The small CNN pools its last map globally, so it forgets where each part of the image is;
on Fashion-MNIST where-a-part-is tells shirts from T-shirts and coats from pullovers. The
2-conv 2-FC network that metric-learning papers train on MNIST-like data (LeNet's shape:
two 5x5 convolutions with 2x2 max-pooling, then a wide fully connected layer over the
flattened map; the embedding head is the second FC layer) keeps it. In the demo's 16
semi-hard epochs on Fashion-MNIST it reached test MAP@R 0.834 / P@1 0.902 against the small
CNN's 0.783 / 0.893 (README, "The demo"; docs/design.md 6).
"""

from __future__ import annotations

from torch import nn

from lookalike.errors import ConfigError
from lookalike.models.flattened_map import FlattenedMapBackbone


class ConvFC(FlattenedMapBackbone):
    """conv5x5(w1)-ReLU-pool, conv5x5(w2)-ReLU-pool, flatten, FC(hidden)-ReLU.

    Args:
        in_channels: channels of the input images.
        input_size: image side (the flattened map's size depends on it).
        widths: the two convolutions' output channels.
        hidden: width of the fully connected layer, ``feature_dim``.
    """

    def __init__(self, in_channels: int = 1, input_size: int = 28,
                 widths: tuple[int, int] = (32, 64), hidden: int = 1024) -> None:
        if in_channels < 1 or input_size < 4 or len(widths) != 2 or min(widths) < 1 \
                or hidden < 1:
            raise ConfigError(f"conv-fc needs in_channels >= 1, input_size >= 4, two positive "
                              f"widths and hidden >= 1, got in_channels={in_channels}, "
                              f"input_size={input_size}, widths={tuple(widths)}, "
                              f"hidden={hidden}")
        side = input_size // 4  # two 2x2 max-pools (floor), 5x5 convolutions keep the size
        features = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(widths[0], widths[1], kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(2))
        super().__init__(features, widths[1] * side * side, in_channels, hidden)

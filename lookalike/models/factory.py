"""Backbones by name, or any user module, behind one contract (cf. timm's ``create_model``).

See ``backbones.py`` for the contract: ``feature_dim``, ``in_channels`` and
``forward(x (B, C, H, W)) -> (B, feature_dim)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lookalike.errors import ConfigError
from lookalike.models.backbones import EfficientNetLite, SmallCNN
from lookalike.models.conv_fc import ConvFC
from lookalike.models.vgg_fc import VGGFC
from lookalike.registry import Registry


class ModuleBackbone(nn.Module):
    """Adapts a user's module to the backbone contract, discovering its output size.

    The module may return (B, F) features or a (B, F, h, w) map, which is average-pooled.

    Args:
        module: any ``nn.Module`` taking (B, in_channels, H, W) images.
        in_channels: channels the module expects.
        input_size: side of the dummy image used once to discover ``feature_dim``.
    """

    def __init__(self, module: nn.Module, in_channels: int = 3, input_size: int = 64) -> None:
        super().__init__()
        self.module = module
        self.in_channels: int | None = in_channels
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                param = next(module.parameters(), None)
                device = param.device if param is not None else torch.device("cpu")
                dummy = torch.zeros(2, in_channels, input_size, input_size, device=device)
                out = self._pool(module(dummy))
        finally:
            module.train(was_training)
        self.feature_dim = int(out.shape[1])

    @staticmethod
    def _pool(out: torch.Tensor) -> torch.Tensor:
        if out.dim() == 4:
            return out.mean(dim=(2, 3))
        if out.dim() != 2:
            shape = tuple(out.shape)
            raise ConfigError(f"a backbone must return (B, F) or (B, F, h, w), got {shape}")
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, feature_dim) features."""
        return self._pool(self.module(x))


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a named backbone, and the input normalisation its pretrained weights
    expect (as timm keeps a pretrained config with each model); None: no pretrained
    weights, so a model normalises with its training data's own channel statistics."""

    build: Callable[..., nn.Module]  # (in_channels, pretrained, input_size, **options)
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None


def _small_cnn(in_channels: int | None, pretrained: bool, input_size: int | None,
               widths: Sequence[int] = (32, 64, 128), pooling: str = "avg") -> nn.Module:
    # no pretrained weights: random init
    return SmallCNN(in_channels or 1, widths, pooling, input_size)


def _refuse_pooling(backbone: str, pooling: str) -> None:
    """The flattening backbones keep the whole map: a --pooling other than the default is
    a mistake to name, not to ignore."""
    if pooling != "avg":
        raise ConfigError(f"{backbone} flattens its map and takes no --pooling, got {pooling!r}")


def _conv_fc(in_channels: int | None, pretrained: bool, input_size: int | None,
             widths: Sequence[int] = (32, 64), hidden: int = 1024,
             pooling: str = "avg") -> nn.Module:
    _refuse_pooling("conv-fc", pooling)
    first, second = widths
    return ConvFC(in_channels or 1, input_size or 28, (first, second), hidden)


def _vgg_fc(in_channels: int | None, pretrained: bool, input_size: int | None,
            widths: Sequence[int] = (32, 64), hidden: int = 1024,
            pooling: str = "avg") -> nn.Module:
    _refuse_pooling("vgg-fc", pooling)
    return VGGFC(in_channels or 1, input_size or 28, tuple(widths), hidden)


def _efficientnet_lite(variant: int) -> Callable[..., nn.Module]:
    def build(in_channels: int | None, pretrained: bool, input_size: int | None,
              pooling: str = "avg") -> nn.Module:
        # fixed 3-channel input: the Embedder converts grayscale
        return EfficientNetLite(variant, pretrained, pooling)

    return build


# The backbones by name (``--backbone`` choices); docs/extending.md adds one. The built-in
# ones take ``pooling="avg" | "gem"`` (``EmbedderConfig.backbone_options``, ``--pooling``).
BACKBONES: Registry[BackboneSpec] = Registry("backbone")
BACKBONES.register("small-cnn", BackboneSpec(_small_cnn))
BACKBONES.register("conv-fc", BackboneSpec(_conv_fc))
BACKBONES.register("vgg-fc", BackboneSpec(_vgg_fc))
BACKBONES.register("efficientnet-lite0",
                   BackboneSpec(_efficientnet_lite(0), EfficientNetLite.NORMALIZATION))
BACKBONES.register("efficientnet-lite1",
                   BackboneSpec(_efficientnet_lite(1), EfficientNetLite.NORMALIZATION))
BACKBONES.register("efficientnet-lite2",
                   BackboneSpec(_efficientnet_lite(2), EfficientNetLite.NORMALIZATION))


def pretrained_normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(mean, std) that a named backbone's pretrained weights expect, or None (no weights:
    normalise with the data's own statistics)."""
    return BACKBONES.get(name).normalization if name in BACKBONES else None


def pretrained_backbones() -> tuple[str, ...]:
    """The registered backbones that come with ImageNet weights (they carry a normalisation):
    the ones a pretrained mining model and the training recipe accept."""
    return tuple(name for name in BACKBONES.names() if BACKBONES.get(name).normalization)


def list_backbones() -> list[str]:
    """Names accepted by :func:`create_backbone`."""
    return sorted(BACKBONES)


def create_backbone(name: str | nn.Module, *, in_channels: int | None = None,
                    pretrained: bool = True, input_size: int | None = None,
                    **options: object) -> nn.Module:
    """Build a backbone by name, or adapt a user's module, so callers never branch on type.

    Args:
        name: a name registered in ``BACKBONES`` (``"small-cnn"``, ``"efficientnet-lite0"``,
            ``-lite1``, ``-lite2``), or an ``nn.Module``. A module with a
            ``feature_dim`` attribute is used as is; any other is wrapped in ModuleBackbone.
        in_channels: channels of the data (default: the backbone's own, 1 for small-cnn).
            A backbone with a fixed input (EfficientNet: 3) ignores it; the Embedder converts.
        pretrained: load pretrained weights where the backbone has any (small-cnn has none).
        input_size: image side; used to discover the output size of a user's module.
        options: backbone options such as ``widths`` for small-cnn, or ``pooling="gem"``
            for any built-in backbone (None values dropped).
    """
    options = {key: value for key, value in options.items() if value is not None}
    if isinstance(name, nn.Module):
        if options:
            raise ConfigError(f"options {sorted(options)} only apply to named backbones")
        if hasattr(name, "feature_dim"):
            if not hasattr(name, "in_channels"):
                setattr(name, "in_channels", in_channels)  # noqa: B010  (nn.Module typing)
            return name
        return ModuleBackbone(name, in_channels or 3, input_size or 64)
    spec = BACKBONES.get(name)
    try:
        return spec.build(in_channels=in_channels, pretrained=pretrained, input_size=input_size,
                       **options)
    except TypeError as exc:
        raise ConfigError(f"bad options for backbone {name!r}: {exc}") from exc

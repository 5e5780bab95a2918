"""--train-blocks: the backbone cut into a frozen prefix and a trainable tail of N blocks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lookalike.errors import ConfigError
from lookalike.models import Embedder, EmbedderConfig, ModuleBackbone, build_embedder
from lookalike.models.split import count_blocks


def lite0_model() -> Embedder:
    pytest.importorskip("efficientnet_lite_pytorch")
    config = EmbedderConfig(backbone="efficientnet-lite0", embedding_dim=8, input_size=32,
                            in_channels=3)
    return build_embedder(config, pretrained=False, seed=0)


def test_small_cnn_tail_of_prefix_is_the_backbone_for_every_cut(tiny_model: Embedder) -> None:
    images = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    tiny_model.eval()
    with torch.no_grad():
        inputs = tiny_model.preprocess(images)
        features, embeddings = tiny_model.backbone(inputs), tiny_model(images)
        assert count_blocks(tiny_model.backbone) == 2
        for n in range(3):
            prefix, tail = tiny_model.split_backbone(n)
            torch.testing.assert_close(tail(prefix(inputs)), features, rtol=0, atol=0)
            prefix, tail = tiny_model.split(n)  # with the preprocessing and the head
            torch.testing.assert_close(tail(prefix(images)), embeddings, rtol=0, atol=0)


def test_lite0_tail_of_prefix_is_the_backbone_in_training_mode_too() -> None:
    # training mode: batch statistics in the tail and drop-connect, whose rate depends on
    # the block's place in the whole network, must match the uncut network
    model = lite0_model()
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for n in (1, 5, 16):
        model.set_train_blocks(n)
        model.train()
        prefix, tail = model.split(n)
        torch.manual_seed(7)
        expected = model(images)
        torch.manual_seed(7)
        with torch.no_grad():
            cached = prefix(images)
        torch.testing.assert_close(tail(cached), expected, rtol=0, atol=1e-6)


def test_train_blocks_freezes_the_prefix_and_keeps_it_in_eval_mode(tiny_model: Embedder) -> None:
    tiny_model.set_train_blocks(1)
    tiny_model.train()
    first, last = tiny_model.backbone.features[:4], tiny_model.backbone.features[4:]
    assert not any(p.requires_grad for p in first.parameters())
    assert all(p.requires_grad for p in last.parameters())
    assert all(p.requires_grad for p in tiny_model.head.parameters())
    assert not first[1].training and last[1].training  # frozen batch norm stays in eval mode
    tiny_model.freeze_backbone(True)  # --freeze-backbone-epochs on top: all frozen ...
    assert not any(p.requires_grad for p in tiny_model.backbone.parameters())
    tiny_model.freeze_backbone(False)  # ... and unfreezing gives back the last block only
    assert not any(p.requires_grad for p in first.parameters())
    assert all(p.requires_grad for p in last.parameters()) and not first[1].training
    tiny_model.set_train_blocks(None)
    assert all(p.requires_grad for p in tiny_model.parameters()) and first[1].training


def test_train_blocks_zero_freezes_the_whole_backbone_of_any_backbone() -> None:
    module = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    backbone = ModuleBackbone(module, in_channels=1, input_size=16)
    config = EmbedderConfig(embedding_dim=4, input_size=16, in_channels=1)
    model = build_embedder(config, backbone=backbone)
    model.set_train_blocks(0)
    model.train()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not module[1].training and model.head.proj.weight.requires_grad
    with pytest.raises(ConfigError, match="only --train-blocks 0"):
        model.set_train_blocks(1)


def test_too_many_blocks_is_one_clear_error(tiny_model: Embedder) -> None:
    with pytest.raises(ConfigError, match="--train-blocks 3: backbone SmallCNN has 2 blocks"):
        tiny_model.set_train_blocks(3)
    assert tiny_model.train_blocks is None  # unchanged


def test_splitting_changes_neither_state_dict_nor_copies(tiny_model: Embedder) -> None:
    keys = list(tiny_model.state_dict())
    tiny_model.set_train_blocks(1)
    assert list(tiny_model.state_dict()) == keys  # the prefix is not a registered submodule
    copied = copy.deepcopy(tiny_model)
    copied.train()
    assert not copied.backbone.features[1].training  # the copy's own prefix is frozen
    assert not any(p.requires_grad for p in copied.backbone.features[:4].parameters())

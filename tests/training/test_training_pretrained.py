"""Fine-tuning a pretrained (or user-supplied) backbone: normalisation, frozen epochs,
backbone learning rate, and the image-file input pipeline (cache and worker processes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lookalike.data import ImageDataset, open_collection
from lookalike.data.pipeline import PrefetchingLoader, cache_resized
from lookalike.models import EmbedderConfig, build_embedder, load_checkpoint
from lookalike.training.config import TrainConfig
from lookalike.training.optim import build_optimizer
from lookalike.training.trainer import resume, train

TINY = TrainConfig.from_options(epochs=2, classes_per_batch=3, items_per_class=4,
                                batches_per_epoch=2, embedding_dim=8, val_fraction=0.25,
                                threads=1, input_size=28)


def _quiet(*_: object) -> None:
    pass


def test_backbone_lr_scale_makes_two_parameter_groups() -> None:
    model = build_embedder(EmbedderConfig(in_channels=3, embedding_dim=8))
    optimizer = build_optimizer(model, TINY.with_options(lr=1e-3, backbone_lr_scale=0.1))
    backbone_lr, head_lr = (group["lr"] for group in optimizer.param_groups)
    assert backbone_lr == pytest.approx(1e-4) and head_lr == pytest.approx(1e-3)
    in_backbone = {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == in_backbone
    assert len(build_optimizer(model, TINY).param_groups) == 1  # scale 1: one group


def test_a_frozen_backbone_keeps_weights_and_batchnorm_statistics() -> None:
    model = build_embedder(EmbedderConfig(in_channels=3, embedding_dim=8))
    model.freeze_backbone(True)
    model.train()
    assert not model.backbone.training and model.head.training
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    optimizer = torch.optim.SGD(list(model.parameters()), lr=0.1)
    model(torch.rand(6, 3, 28, 28)).sum().backward()
    optimizer.step()
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN buffers
    model.freeze_backbone(False)
    assert model.backbone.training and all(p.requires_grad for p in model.backbone.parameters())


def test_training_freezes_the_backbone_for_the_first_epochs(tiny_folder: Path,
                                                            tmp_path: Path) -> None:
    config = TINY.with_options(source=str(tiny_folder), freeze_backbone_epochs=1, epochs=1)
    start = build_embedder(EmbedderConfig(in_channels=3, embedding_dim=8))
    result = train(config, tmp_path / "run", show_progress=False, log=_quiet)
    trained, _ = load_checkpoint(result.run.last)
    # epoch 1 was frozen: the backbone is the seeded initial one, only the head moved
    for name, value in start.backbone.state_dict().items():
        assert torch.equal(value, trained.backbone.state_dict()[name]), name
    head_before, head_after = start.head.state_dict(), trained.head.state_dict()
    assert any(not torch.equal(head_before[k], head_after[k]) for k in head_before)


def test_a_pretrained_backbone_keeps_its_imagenet_normalisation(tiny_folder: Path,
                                                                tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    config = TINY.with_options(source=str(tiny_folder), backbone="efficientnet-lite0",
                               input_size=32, epochs=1, batches_per_epoch=1,
                               freeze_backbone_epochs=1)
    result = train(config, tmp_path / "run", show_progress=False, log=_quiet)
    info = json.loads((result.run.last / "model.json").read_text())
    assert info["embedder"]["mean"] == [0.5, 0.5, 0.5]
    assert info["embedder"]["std"] == [0.5, 0.5, 0.5]


class TinyFeatures(nn.Module):
    """A user's backbone from outside lookalike: any module returning a feature map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))  # (B, 5, H, W): pooled by lookalike


def test_a_user_module_trains_resumes_and_reloads(tiny_folder: Path, tmp_path: Path) -> None:
    config = TINY.with_options(source=str(tiny_folder), backbone="my-features", epochs=1)
    result = train(config, tmp_path / "run", show_progress=False, log=_quiet,
                   backbone=TinyFeatures())
    model, _ = load_checkpoint(result.run.last, backbone=TinyFeatures())
    assert model.backbone.feature_dim == 5
    resumed = resume(tmp_path / "run", changes={"epochs": 2}, show_progress=False, log=_quiet,
                     backbone=TinyFeatures())
    assert [r["epoch"] for r in resumed.records] == [1, 2]


def test_the_image_cache_gives_the_same_pixels_and_is_reused(tiny_folder: Path,
                                                             tmp_path: Path) -> None:
    collection = open_collection(tiny_folder)
    cached = cache_resized(collection, 20, 3, tmp_path, workers=2, progress=False, log=_quiet)
    direct = ImageDataset(collection, size=20, channels=3).batch(range(len(collection)))[0]
    assert torch.equal(ImageDataset(cached, channels=3).batch(range(len(cached)))[0], direct)
    assert np.array_equal(cached.labels, collection.labels)
    files = sorted(tmp_path.glob("images-*.npy"))
    stamp = files[0].stat().st_mtime_ns
    cache_resized(collection, 20, 3, tmp_path, progress=False, log=_quiet)
    assert sorted(tmp_path.glob("images-*.npy")) == files and files[0].stat().st_mtime_ns == stamp
    cache_resized(collection, 24, 3, tmp_path, progress=False, log=_quiet)  # another size
    assert len(list(tmp_path.glob("images-*.npy"))) == 2


def test_worker_processes_load_the_same_batches(tiny_folder: Path) -> None:
    dataset = ImageDataset(open_collection(tiny_folder), size=20, channels=3)
    batches = [[0, 7, 3], [5, 1], [2, 2, 9]]
    loader = PrefetchingLoader(dataset, batches, workers=2)
    for indices in batches:
        images, labels, index = loader.load(indices)
        expected = dataset.batch(indices)
        assert torch.equal(images, expected[0]) and torch.equal(labels, expected[1])
        assert index.tolist() == indices


def test_training_with_cache_and_workers_matches_plain_training(tiny_folder: Path,
                                                                tmp_path: Path,
                                                                monkeypatch) -> None:
    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path / "cache"))
    base = TINY.with_options(source=str(tiny_folder), epochs=1)
    plain = train(base, tmp_path / "plain", show_progress=False, log=_quiet)
    fast = train(base.with_options(cache_images=True, workers=2), tmp_path / "fast",
                 show_progress=False, log=_quiet)
    workers = train(base.with_options(workers=2), tmp_path / "workers", show_progress=False,
                    log=_quiet)
    for other in (fast, workers):
        assert other.records[0]["train_loss"] == pytest.approx(plain.records[0]["train_loss"],
                                                                rel=1e-5)
    assert list((tmp_path / "cache").glob("images-*.npy"))


def test_hybrid_mining_with_the_pretrained_backbone_from_the_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    """The photo workflow of the README: pretrained backbone, unseen classes, hybrid mining
    by the pretrained backbone, image cache and workers; then evaluate on unseen classes."""
    pytest.importorskip("efficientnet_lite_pytorch")
    from lookalike.cli import main

    from ..conftest import write_class_folder

    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path / "cache"))
    photos = write_class_folder(tmp_path / "photos", classes=6, per_class=6, size=40)
    run = tmp_path / "run"
    code = main(["train", "--data", str(photos), "--split", "classes", "--backbone",
                 "efficientnet-lite0", "--input-size", "32", "--embedding-dim", "8",
                 "--mining", "hybrid", "--mining-model", "efficientnet-lite0",
                 "--mining-input-size", "32", "--warmup-epochs", "0", "--epochs", "1",
                 "-P", "3", "-K", "3", "--batches-per-epoch", "1",
                 "--freeze-backbone-epochs", "1", "--cache-images", "--workers", "1",
                 "--threads", "1", "--out", str(run), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert (run / "pools" / "e000000.npz").is_file()  # mined by the pretrained backbone
    capsys.readouterr()
    code = main(["evaluate", "--checkpoint", str(run / "last"), "--data", str(photos),
                 "--split", "unseen", "--quiet"])
    assert code == 0 and "MAP@R" in capsys.readouterr().out

"""--feature-cache: training the tail on cached prefix features equals the uncached path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lookalike.data import ImageDataset, open_collection
from lookalike.errors import ConfigError
from lookalike.models import EmbedderConfig, build_embedder, load_checkpoint
from lookalike.training.feature_cache import FeatureCache, build_feature_cache
from lookalike.training.trainer import resume, train

from .conftest import QUIET, InterruptAt, TrainingInterrupted, tiny_config


def records(run: Path) -> list[dict[str, float]]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last" / "model.safetensors"))


@pytest.mark.parametrize("frozen", [{"train_blocks": 1},
                                    {"train_blocks": 0},
                                    {"freeze_backbone_epochs": 2}],
                         ids=["last-block", "head-only", "frozen-epochs"])
def test_cached_training_gives_the_uncached_losses_and_weights(
        tiny_folder: Path, tmp_path: Path, frozen: dict[str, int]) -> None:
    # one view and no augmentation: the same inputs for both paths, batch for batch
    config = tiny_config(tiny_folder, augment="none", lr_schedule="none", **frozen)
    train(config, tmp_path / "plain", **QUIET)
    train(config.with_options(feature_cache=True, cached_views=1,
                              feature_cache_dtype="float32"), tmp_path / "cached", **QUIET)
    plain, cached = records(tmp_path / "plain"), records(tmp_path / "cached")
    for a, b in zip(plain, cached, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-5)
        assert b["val_map_at_r"] == pytest.approx(a["val_map_at_r"], abs=1e-5)
    assert cached[0]["cache_seconds"] > 0 and "cache_seconds" not in cached[1]
    assert cached[0]["seconds"] >= cached[0]["cache_seconds"]  # counted as training time
    uncached, from_cache = weights(tmp_path / "plain"), weights(tmp_path / "cached")
    assert uncached.keys() == from_cache.keys()
    for key in uncached:
        torch.testing.assert_close(from_cache[key], uncached[key], rtol=0, atol=1e-5, msg=key)


def test_train_blocks_leaves_the_frozen_part_as_it_was(tiny_folder: Path, tmp_path: Path) -> None:
    train(tiny_config(tiny_folder, train_blocks=1), tmp_path / "run", **QUIET)
    trained, _ = load_checkpoint(tmp_path / "run" / "last")
    initial = build_embedder(trained.config, pretrained=False, seed=0)  # the run's seed
    before, after = initial.state_dict(), trained.state_dict()
    frozen = [k for k in before if k.startswith("backbone.features.") and
              int(k.split(".")[2]) < 8]  # the first 2 of 3 conv groups, BN statistics too
    assert frozen
    for key in frozen:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0, msg=key)
    assert not torch.equal(after["backbone.features.8.weight"],
                           before["backbone.features.8.weight"])
    assert not torch.equal(after["head.proj.weight"], before["head.proj.weight"])


def test_cached_views_are_augmented_and_resume_continues_exactly(
        tiny_folder: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_folder, train_blocks=1, feature_cache=True, cached_views=3)
    train(config, tmp_path / "straight", **QUIET)
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "stopped", extra_callbacks=[InterruptAt(6)], **QUIET)
    resume(tmp_path / "stopped", **QUIET)
    losses = [r["train_loss"] for r in records(tmp_path / "straight")]
    assert [r["train_loss"] for r in records(tmp_path / "stopped")] == pytest.approx(losses)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "stopped")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)


def tiny_dataset(folder: Path) -> ImageDataset:
    return ImageDataset(open_collection(folder), size=28, channels=3)


def test_cache_draws_one_view_per_item_from_the_generator(tiny_folder: Path) -> None:
    model = build_embedder(EmbedderConfig(input_size=28, in_channels=3, embedding_dim=4,
                                          backbone_options={"widths": [4, 8]}), seed=0)
    prefix, _ = model.split(1)
    dataset = tiny_dataset(tiny_folder)

    def flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return images.flip(-1)

    cache = build_feature_cache(prefix, dataset, flip, views=2,
                                generator=torch.Generator(), seed=0,
                                device=torch.device("cpu"), progress=False, log=lambda _: None)
    assert cache.features.shape == (2, len(dataset), 4, 14, 14)
    assert cache.features.dtype == np.float16
    with torch.no_grad():
        prefix.eval()  # as the cache ran it
        images = dataset.batch([0, 1])[0]
        expected = [prefix(images), prefix(images.flip(-1))]  # view 0 is the image as it is
    for v in range(2):
        torch.testing.assert_close(torch.from_numpy(cache.features[v, :2]).float(),
                                   expected[v], rtol=0, atol=2e-3)
    features, labels = cache.batch(list(range(20)), torch.Generator().manual_seed(1))
    drawn = torch.randint(2, (20,), generator=torch.Generator().manual_seed(1))
    picked = torch.from_numpy(cache.features[drawn.numpy(), np.arange(20)]).float()
    assert torch.equal(features, picked) and 0 < int(drawn.sum()) < 20
    assert labels.tolist() == dataset.collection.labels[:20].tolist()


def test_cache_file_is_written_once_and_reused(tiny_folder: Path, tmp_path: Path) -> None:
    model = build_embedder(EmbedderConfig(input_size=28, in_channels=3, embedding_dim=4,
                                          backbone_options={"widths": [4, 8]}), seed=0)
    prefix, _ = model.split(0)
    dataset = tiny_dataset(tiny_folder)
    said: list[str] = []

    def build() -> FeatureCache:
        return build_feature_cache(prefix, dataset, lambda x, g: x, views=1,
                                   generator=torch.Generator(), seed=0, folder=tmp_path,
                                   device=torch.device("cpu"), progress=False, log=said.append)

    first = build()
    files = list(tmp_path.glob("features-*.npy"))
    assert len(files) == 1 and said[-1].startswith("cached 1 views")
    second = build()
    assert said[-1].startswith("reusing") and np.array_equal(first.features, second.features)
    model.head.proj.weight.data.zero_()  # the tail is not part of the key ...
    build()
    assert len(list(tmp_path.glob("features-*.npy"))) == 1
    model.backbone.features[0].weight.data.zero_()  # ... the prefix's weights are
    build()
    assert len(list(tmp_path.glob("features-*.npy"))) == 2


def test_feature_cache_needs_a_part_frozen_all_run(tiny_folder: Path) -> None:
    with pytest.raises(ConfigError, match="--feature-cache needs"):
        tiny_config(tiny_folder, feature_cache=True, freeze_backbone_epochs=1).validate()
    tiny_config(tiny_folder, feature_cache=True, freeze_backbone_epochs=2).validate()
    with pytest.raises(ConfigError, match="--cached-views"):
        tiny_config(tiny_folder, train_blocks=0, feature_cache=True, cached_views=0).validate()


def test_command_line_options(tiny_folder: Path, tmp_path: Path) -> None:
    from lookalike.cli import main

    from ..conftest import TINY_TRAIN

    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_folder), "--out", str(out), *TINY_TRAIN,
                 "--train-blocks", "1", "--feature-cache", "--cached-views", "2",
                 "--feature-cache-dtype", "float32"]) == 0
    model = json.loads((out / "config.json").read_text())["config"]["model"]
    assert (model["train_blocks"], model["feature_cache"], model["cached_views"],
            model["feature_cache_dtype"]) == (1, True, 2, "float32")
    assert "cache_seconds" in records(out)[0]

"""The pretrained-backbone recipe (training/recipe.py): what the obvious command fills in."""

import json
from pathlib import Path

import pytest

from lookalike.cli import main
from lookalike.training.recipe import (
    IMAGE_BUDGET,
    MAX_EPOCHS,
    MIN_EPOCHS,
    PRETRAINED_RECIPE,
    applies,
    fitted_epochs,
    pretrained_recipe,
    with_recipe,
)


def test_only_pretrained_backbones_get_the_recipe() -> None:
    assert applies({"backbone": "efficientnet-lite0"})
    assert applies({"backbone": "efficientnet-lite2"})
    assert not applies({"backbone": "small-cnn"})
    assert not applies({})  # the default small CNN
    assert not applies({"backbone": "efficientnet-lite0", "pretrained": False})
    assert with_recipe({"backbone": "small-cnn", "epochs": 2}) == {"backbone": "small-cnn",
                                                                    "epochs": 2}


def test_the_users_options_win_and_the_rest_is_filled() -> None:
    recipe = pretrained_recipe({"backbone": "efficientnet-lite0", "input_size": 96,
                                "flip": True, "epochs": 2}, train_items=4000)
    assert "input_size" not in recipe.options and "flip" not in recipe.options
    assert "epochs" not in recipe.options
    assert recipe.options["embedding_dim"] == PRETRAINED_RECIPE["embedding_dim"][0]
    assert recipe.options["backbone_lr_scale"] == PRETRAINED_RECIPE["backbone_lr_scale"][0]
    assert set(recipe.reasons) == set(recipe.options)


@pytest.mark.parametrize(("items", "epochs"), [
    (1, MAX_EPOCHS), (IMAGE_BUDGET // 10, 10), (4000, 10), (IMAGE_BUDGET * 10, MIN_EPOCHS)])
def test_epochs_spend_the_image_budget(items: int, epochs: int) -> None:
    assert fitted_epochs(items) == epochs


def test_the_obvious_command_trains_with_the_recipe(tiny_folder: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    code = main(["train", "--data", str(tiny_folder), "--split", "classes", "--backbone",
                 "efficientnet-lite0", "--out", str(run), "--epochs", "1", "--input-size", "32",
                 "--batches-per-epoch", "1", "--quiet", "--threads", "1"])
    assert code == 0
    out = capsys.readouterr().out
    # the tiny folder's 'seen' half: 2 classes x 16 images
    assert "recipe for a pretrained efficientnet-lite0 on 32 training images: " \
        "--embedding-dim 128 --backbone-lr-scale 1 --augment photo --no-flip --cache-images" in out
    saved = json.loads((run / "config.json").read_text())["config"]
    assert saved["model"]["input_size"] == 32 and saved["optim"]["epochs"] == 1  # given: kept
    assert saved["model"]["embedding_dim"] == 128 and saved["data"]["flip"] is False
    assert saved["model"]["backbone_lr_scale"] == 1.0 and saved["data"]["augment"] == "photo"
    assert saved["data"]["cache_images"] is True and any((tmp_path / "cache").iterdir())

"""End-to-end behaviour of train(): files, resume, interrupts, NaN guard."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lookalike.errors import ConfigError, TrainingError
from lookalike.training.config import TrainConfig
from lookalike.training.trainer import TrainingInterrupted, train

from .conftest import tiny_config


def weights(run: Path, which: str = "last") -> dict[str, torch.Tensor]:
    return load_file(str(run / which / "model.safetensors"))


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


@pytest.mark.parametrize("mining", ["batch-all", "batch-hard", "semi-hard", "offline", "hybrid",
                                    "offline-hard"])
def test_train_writes_run_folder(tiny_folder: Path, tmp_path: Path, mining: str) -> None:
    result = train(tiny_config(tiny_folder, mining=mining), tmp_path / "run", show_progress=False,
                   log=lambda _: None)
    run = tmp_path / "run"
    assert (run / "config.json").is_file()
    assert json.loads((run / "config.json").read_text())["config"]["mining"] == mining
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert 0.0 <= record["val_map_at_r"] <= 1.0
        assert 0.0 <= record["fraction_positive"] <= 1.0
        assert record["train_images"] > 0
    assert (run / "best" / "model.safetensors").is_file()
    assert (run / "last" / "model.json").is_file()
    assert result.best_map_at_r == max(r["val_map_at_r"] for r in records)
    assert not list(run.rglob("*.tmp")), "no temporary files are left behind"


def test_resume_after_finished_epochs_matches_straight_run(tiny_folder: Path,
                                                           tmp_path: Path) -> None:
    # Extending a finished run: with a constant lr the extension equals a straight run
    # (a cosine schedule's length depends on the total epochs, so it would differ).
    quiet = {"show_progress": False, "log": lambda _: None}
    train(tiny_config(tiny_folder, epochs=3, lr_schedule="none"), tmp_path / "straight", **quiet)
    train(tiny_config(tiny_folder, epochs=1, lr_schedule="none"), tmp_path / "resumed", **quiet)
    train(tiny_config(tiny_folder, epochs=3), tmp_path / "resumed", resume=True, **quiet)
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "resumed"))
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_ctrl_c_saves_and_resume_continues_exactly(tiny_folder: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    quiet = {"show_progress": False, "log": lambda _: None}
    config = tiny_config(tiny_folder, epochs=2)
    train(config, tmp_path / "straight", **quiet)

    import lookalike.training.trainer as trainer_module

    original_epoch = trainer_module.train_epoch
    calls = {"n": 0}

    def interrupting_epoch(model, loss_fn, batches, load_batch, *args, **kwargs):
        def load_or_interrupt(indices: object) -> object:
            calls["n"] += 1
            if calls["n"] == 6:  # second epoch, second batch
                raise KeyboardInterrupt
            return load_batch(indices)

        return original_epoch(model, loss_fn, batches, load_or_interrupt, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_epoch", interrupting_epoch)
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(config, tmp_path / "stopped", **quiet)
    monkeypatch.setattr(trainer_module, "train_epoch", original_epoch)
    train(config, tmp_path / "stopped", resume=True, **quiet)
    def losses(run: str) -> list[float]:
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["train_loss"] for line in lines]

    assert losses("stopped") == pytest.approx(losses("straight"))
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "stopped"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_folder: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    quiet = {"show_progress": False, "log": lambda _: None}
    config = tiny_config(tiny_folder, epochs=2)
    train(replace(config, epochs=1), tmp_path / "run", **quiet)
    good = weights(tmp_path / "run")

    from lookalike.losses import TripletLoss

    original_forward = TripletLoss.forward

    def nan_forward(self: TripletLoss, embeddings: torch.Tensor, labels: torch.Tensor) -> object:
        output = original_forward(self, embeddings, labels)
        return output._replace(loss=output.loss * float("nan"))

    monkeypatch.setattr(TripletLoss, "forward", nan_forward)
    with pytest.raises(TrainingError, match="batch 1"):
        train(config, tmp_path / "run", resume=True, **quiet)
    assert_same_weights(good, weights(tmp_path / "run"))


def test_refuses_to_overwrite_an_existing_run(tiny_folder: Path, tmp_path: Path) -> None:
    quiet = {"show_progress": False, "log": lambda _: None}
    train(tiny_config(tiny_folder, epochs=1), tmp_path / "run", **quiet)
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_config(tiny_folder, epochs=1), tmp_path / "run", **quiet)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"mining": "hardest"}, "--mining"), ({"margin": -1.0}, "--margin"),
     ({"items_per_class": 1}, "--items-per-class"), ({"distance": "manhattan"}, "--distance")],
)
def test_config_rejects_bad_values(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        replace(TrainConfig(), **changes).validate()


@pytest.mark.parametrize("mining", ["hybrid", "offline-hard"])
def test_pooled_strategies_mine_after_warmup_and_resume_exactly(
    tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mining: str
) -> None:
    quiet = {"show_progress": False, "log": lambda _: None}
    config = tiny_config(tiny_folder, epochs=3, mining=mining, warmup_epochs=1,
                         refresh_every=1, hard_positives=2, hard_negatives=2)
    train(config, tmp_path / "straight", **quiet)
    lines = (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    refresh = [json.loads(line)["refresh_seconds"] for line in lines]
    assert refresh[0] == 0.0 and refresh[1] > 0.0  # warm-up, then the first pools
    if mining == "hybrid":
        assert refresh[2] > 0.0  # refreshed every epoch
    else:
        assert refresh[2] == 0.0  # offline: mined once
    assert (tmp_path / "straight" / "pools.npz").is_file()

    import lookalike.training.trainer as trainer_module

    original_epoch = trainer_module.train_epoch
    calls = {"n": 0}

    def interrupting_epoch(model, loss_fn, batches, load_batch, *args, **kwargs):
        def load_or_interrupt(indices: object) -> object:
            calls["n"] += 1
            if calls["n"] == 11:  # third epoch, third batch: after a refresh
                raise KeyboardInterrupt
            return load_batch(indices)

        return original_epoch(model, loss_fn, batches, load_or_interrupt, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_epoch", interrupting_epoch)
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "stopped", **quiet)
    monkeypatch.setattr(trainer_module, "train_epoch", original_epoch)
    train(config, tmp_path / "stopped", resume=True, **quiet)
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "stopped"))

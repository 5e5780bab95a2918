"""End-to-end behaviour of train(): files, resume, interrupts, NaN guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lookalike.errors import ConfigError, TrainingError
from lookalike.training.config import TrainConfig
from lookalike.training.trainer import resume, train

from .conftest import InterruptAt, TrainingInterrupted, tiny_config


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
    assert json.loads((run / "config.json").read_text())["config"]["objective"]["mining"] == mining
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
    resume(tmp_path / "resumed", changes={"epochs": 3}, **quiet)
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "resumed"))
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_ctrl_c_saves_and_resume_continues_exactly(tiny_folder: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    quiet = {"show_progress": False, "log": lambda _: None}
    config = tiny_config(tiny_folder, epochs=2)
    train(config, tmp_path / "straight", **quiet)

    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(config, tmp_path / "stopped", extra_callbacks=[InterruptAt(6)], **quiet)
    resume(tmp_path / "stopped", **quiet)
    def losses(run: str) -> list[float]:
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["train_loss"] for line in lines]

    assert losses("stopped") == pytest.approx(losses("straight"))
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "stopped"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_folder: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    quiet = {"show_progress": False, "log": lambda _: None}
    config = tiny_config(tiny_folder, epochs=2)
    train(config.with_options(epochs=1), tmp_path / "run", **quiet)
    good = weights(tmp_path / "run")

    from lookalike.losses import TripletLoss

    original_forward = TripletLoss.forward

    def nan_forward(self: TripletLoss, embeddings: torch.Tensor, labels: torch.Tensor) -> object:
        output = original_forward(self, embeddings, labels)
        return output._replace(loss=output.loss * float("nan"))

    monkeypatch.setattr(TripletLoss, "forward", nan_forward)
    with pytest.raises(TrainingError, match="batch 1"):
        resume(tmp_path / "run", changes={"epochs": 2}, **quiet)
    assert_same_weights(good, weights(tmp_path / "run"))


def test_refuses_to_overwrite_an_existing_run(tiny_folder: Path, tmp_path: Path) -> None:
    quiet = {"show_progress": False, "log": lambda _: None}
    train(tiny_config(tiny_folder, epochs=1), tmp_path / "run", **quiet)
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_config(tiny_folder, epochs=1), tmp_path / "run", **quiet)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"mining": "hardest"}, "--mining"), ({"margin": -1.0}, "--margin"),
     ({"items_per_class": 1}, "--items-per-class"), ({"distance": "manhattan"}, "--distance"),
     ({"mirror_average": True, "flip": False}, "--mirror-average .*--no-flip")],
)
def test_config_rejects_bad_values(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_options(**changes).validate()


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
    assert list((tmp_path / "straight" / "pools").glob("e*.npz"))  # kept for --resume

    with pytest.raises(TrainingInterrupted):  # third epoch, third batch: after a refresh
        train(config, tmp_path / "stopped", extra_callbacks=[InterruptAt(11)], **quiet)
    resume(tmp_path / "stopped", **quiet)
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "stopped"))


def test_resume_refuses_conflicting_options_and_names_them(tiny_folder: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    from lookalike.cli import main

    from ..conftest import fails

    run = str(tmp_path / "run")
    flags = ["--data", str(tiny_folder), "-P", "3", "-K", "4", "--batches-per-epoch", "2",
             "--embedding-dim", "8", "--threads", "1", "--quiet"]
    assert main(["train", "--out", run, "--epochs", "1", *flags]) == 0
    message = fails(capsys, ["train", "--resume", run, "--lr", "0.1"])
    assert "--lr 0.1 conflicts with the run's 0.001" in message
    assert "--epochs" in message  # says what may change
    assert "--margin" in fails(capsys, ["train", "--resume", run, "--margin", "0.5"])
    # repeating the original options is fine, and --epochs extends the run
    assert main(["train", "--resume", run, "--epochs", "2", *flags]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert saved["optim"]["epochs"] == 2
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_an_extended_cosine_schedule_follows_the_longer_run() -> None:
    from lookalike.training.optim import build_scheduler, cosine_factor

    def scheduler(epochs: int) -> tuple[torch.optim.Optimizer, object]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
        return optimizer, build_scheduler(optimizer, TrainConfig.from_options(epochs=epochs), 4)

    short_optimizer, short = scheduler(1)
    for _ in range(4):
        short_optimizer.step()
        short.step()
    assert short_optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # a finished 1-epoch run
    long_optimizer, long = scheduler(3)
    long_optimizer.load_state_dict(short_optimizer.state_dict())
    long.load_state_dict(short.state_dict())
    long_optimizer.step()
    long.step()  # step 5 of 12
    assert long_optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * cosine_factor(5, 12))


def test_a_mirror_averaged_run_saves_and_validates_with_it(tiny_folder: Path,
                                                            tmp_path: Path) -> None:
    """--mirror-average reaches the checkpoint, so an index or a server embeds as the
    run's validation did: an image and its mirror image alike."""
    from lookalike.models import load_checkpoint

    train(tiny_config(tiny_folder, epochs=1, mirror_average=True), tmp_path / "run",
          show_progress=False, log=lambda _: None)
    model, info = load_checkpoint(tmp_path / "run" / "best")
    assert info.config.mirror_average
    size = model.config.input_size
    images = torch.rand(3, model.config.in_channels, size, size)
    with torch.no_grad():
        assert torch.allclose(model.eval()(images), model(images.flip(-1)), atol=1e-6)

"""--seed drives every random choice of a run: initial weights, batches, augmentation,
contrastive negatives; the same seed gives the same run, another seed another one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lookalike.training.fit import Callback, TrainingState
from lookalike.training.trainer import resume, train

from .conftest import QUIET, InterruptAt, TrainingInterrupted, tiny_config


class InitialWeights(Callback):
    """Keeps a copy of the weights the run starts from."""

    def __init__(self) -> None:
        self.weights: dict[str, torch.Tensor] = {}

    def on_run_start(self, state: TrainingState) -> None:
        self.weights = {k: v.clone() for k, v in state.model.state_dict().items()}


def start_and_end(data: Path, out: Path, **changes: object) -> tuple[dict, dict, list[dict]]:
    initial = InitialWeights()
    train(tiny_config(data, epochs=1, **changes), out, extra_callbacks=[initial], **QUIET)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return initial.weights, load_file(str(out / "last" / "model.safetensors")), records


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_same_seed_gives_the_same_run_and_another_seed_another(tiny_folder: Path,
                                                                   tmp_path: Path) -> None:
    start_a, end_a, log_a = start_and_end(tiny_folder, tmp_path / "a", seed=5)
    start_b, end_b, log_b = start_and_end(tiny_folder, tmp_path / "b", seed=5)
    start_c, end_c, log_c = start_and_end(tiny_folder, tmp_path / "c", seed=6)
    assert same(start_a, start_b) and same(end_a, end_b)
    assert log_a[0]["train_loss"] == log_b[0]["train_loss"]
    assert not same(start_a, start_c), "another seed must start from other weights"
    assert not same(end_a, end_c)
    assert log_a[0]["train_loss"] != log_c[0]["train_loss"]


@pytest.mark.parametrize("seed", [0, 2**63 - 1])
def test_any_accepted_seed_trains(tiny_folder: Path, tmp_path: Path, seed: int) -> None:
    _, end, _ = start_and_end(tiny_folder, tmp_path / "run", seed=seed)
    assert all(bool(torch.isfinite(t).all()) for t in end.values() if t.is_floating_point())


def test_contrastive_negatives_come_from_the_run_and_resume_exactly(tiny_folder: Path,
                                                                    tmp_path: Path) -> None:
    config = tiny_config(tiny_folder, loss="contrastive", epochs=2, seed=4)
    train(config, tmp_path / "straight", **QUIET)
    torch.manual_seed(12345)  # the global stream must not matter
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "stopped", extra_callbacks=[InterruptAt(5)], **QUIET)
    torch.rand(100)  # nor draws from it between the interruption and the resume
    resume(tmp_path / "stopped", **QUIET)
    straight = load_file(str(tmp_path / "straight" / "last" / "model.safetensors"))
    stopped = load_file(str(tmp_path / "stopped" / "last" / "model.safetensors"))
    assert same(straight, stopped)


def test_the_contrastive_loss_draws_from_the_generator_the_run_saves() -> None:
    from lookalike.training.config import TrainConfig
    from lookalike.training.strategy import build_plan

    config = TrainConfig.from_options(loss="contrastive", classes_per_batch=3,
                                      items_per_class=4).validate()
    generator = torch.Generator().manual_seed(1)
    loss = build_plan(config, torch.arange(24).remainder(3).numpy(), generator).strategy_for(0).loss
    assert loss.generator is generator

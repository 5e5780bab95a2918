"""Persist the run after every epoch: the metrics line, then one commit of ``last``,
``best`` (on a new best validation MAP@R) and the resume state together; on Ctrl-C, the
exact mid-epoch position. Weights are checked before they are committed: nothing
non-finite is ever saved (training/run.py describes the commit).

Only the main process gets this callback (lookalike/training/trainer.py decides, in one
place), so several processes never write one run folder.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from lookalike.errors import TrainingError
from lookalike.models.checkpoint import save_checkpoint
from lookalike.models.embedder import Embedder
from lookalike.models.state import save_training_state
from lookalike.training.callbacks.finite_guard import kept_checkpoint, non_finite_tensors
from lookalike.training.fit import Callback, TrainingState
from lookalike.training.progress import EpochProgress
from lookalike.training.run import RunDirectory


def resume_state(state: TrainingState, epoch: int, progress: EpochProgress) -> dict[str, Any]:
    """What ``--resume`` needs besides the weights: optimiser, schedule, streams, position."""
    return {
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict() if state.scheduler is not None else {},
        "generator": state.generator.get_state(),
        "pair_generator": state.pair_generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "epoch": epoch,
        "progress": progress.to_dict(),
        "best_map_at_r": state.best_score,
        "elapsed": state.elapsed,
    }


def position(epoch: int, progress: EpochProgress) -> str:
    """``epoch 3`` after a whole epoch, ``epoch 4, batch 2`` mid-epoch (1-based)."""
    if progress.batches_done == 0:
        return f"epoch {epoch}"
    return f"epoch {epoch + 1}, batch {progress.batches_done}"


def link_files(source: Path, target: Path) -> None:
    """``target`` gets hard links to ``source``'s files (an unchanged checkpoint costs no
    copy; files are only ever replaced, never changed in place)."""
    target.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        os.link(file, target / file.name)


class Checkpointing(Callback):
    def __init__(self, run: RunDirectory, class_names: list[str],
                 training_config: dict[str, Any]) -> None:
        self.run, self.class_names, self.training_config = run, class_names, training_config

    def on_epoch_end(self, state: TrainingState) -> None:
        self.run.log_epoch(state.record)
        score = state.record["val_map_at_r"]
        if math.isnan(score):  # no validation class has two items to retrieve: best = latest
            is_best = state.best_score < 0
        else:
            is_best, state.best_score = score > state.best_score, max(state.best_score, score)
        self.commit(state, state.epoch + 1, EpochProgress(), new_best=is_best)

    def on_interrupt(self, state: TrainingState) -> None:
        if not non_finite_tensors(state.model):
            self.commit(state, state.epoch, state.progress, new_best=False)

    def commit(self, state: TrainingState, epoch: int, progress: EpochProgress, *,
               new_best: bool) -> None:
        """Write last (and best) with the resume state as one generation."""
        broken = non_finite_tensors(state.model)  # the last line of defence: never save them
        if broken:
            raise TrainingError(f"not saving {self.run.root}: {len(broken)} weight tensors are "
                                f"non-finite (e.g. {broken[0]}); "
                                f"{kept_checkpoint(state, self.run.root)}")
        model: Embedder = state.model  # type: ignore[assignment]
        previous_best = self.run.best if self.run.best.is_dir() else None

        def write(folder: Path) -> None:
            for name in ("last", "best") if new_best else ("last",):
                save_checkpoint(folder / name, model, class_names=self.class_names,
                                training_config=self.training_config)
            if not new_best and previous_best is not None:
                link_files(previous_best, folder / "best")
            save_training_state(folder / "state", resume_state(state, epoch, progress))

        self.run.commit(write)
        state.committed = position(epoch, progress)

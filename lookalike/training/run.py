"""The run directory: where one training run keeps its config, log and checkpoints.

Layout::

    runs/NAME/
      config.json        resolved TrainConfig + argv + lookalike version
      metrics.jsonl      one JSON record per finished epoch
      best/              checkpoint with the best validation MAP@R
      last/              checkpoint after the latest epoch (or at Ctrl-C)
      state/             optimiser, RNG and position, for --resume

Every file is written atomically, so an interrupted write never leaves a half file.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike import __version__
from lookalike.errors import ConfigError
from lookalike.files import append_jsonl, write_json
from lookalike.training.config import TrainConfig


@dataclass(frozen=True)
class RunDirectory:
    """Names the files of a run; reading and writing go through its methods."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def best(self) -> Path:
        return self.root / "best"

    @property
    def last(self) -> Path:
        return self.root / "last"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def write_config(self, config: TrainConfig, argv: list[str] | None = None) -> None:
        write_json(
            self.config_path,
            {
                "lookalike_version": __version__,
                "argv": list(sys.argv[1:] if argv is None else argv),
                "config": config.to_dict(),
            },
        )

    def read_config(self) -> TrainConfig:
        """The config a run was started with (for --resume)."""
        if not self.config_path.is_file():
            raise ConfigError(f"{self.root}: not a lookalike run folder (no config.json)")
        try:
            stored = json.loads(self.config_path.read_text(encoding="utf-8"))
            return TrainConfig.from_dict(stored["config"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.config_path}: unreadable run config ({exc})") from exc

    def log_epoch(self, record: dict[str, Any]) -> None:
        append_jsonl(self.metrics_path, record)

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def truncate_metrics(self, epochs_done: int) -> None:
        """Drop records of epochs after the resume point (a crash between log and state)."""
        kept = [r for r in self.read_metrics() if r.get("epoch", 0) <= epochs_done]
        self.metrics_path.unlink(missing_ok=True)
        for record in kept:
            self.log_epoch(record)

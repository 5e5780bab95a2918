"""The run directory: where one training run keeps its config, log and checkpoints.

Layout::

    runs/NAME/
      config.json          resolved TrainConfig (in parts) + argv + lookalike version
      metrics.jsonl        one JSON record per finished epoch, append-only
      generations/g000007/ one committed save: last/, best/, state/ (and the pools file)
      current -> generations/g000007
      last -> current/last, best -> current/best, state -> current/state
      pools/e000001.npz    the hard-example pools mined for an epoch (hybrid)

A checkpoint (weights + description) and the resume state must agree, so they are never
written in place: a commit writes a whole new generation folder, fsyncs it, and then
replaces the one ``current`` link, the single atomic step that switches ``last``,
``best`` and ``state`` together. A kill at any instant leaves ``current`` on a complete
generation; the previous generation stays until the next commit, so a reader that resolved
``last`` just before a switch still finds its files. metrics.jsonl is only appended to; on
resume a torn last line and the epochs after the committed state are cut, in place.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike import __version__
from lookalike.errors import ConfigError, DiskFullError
from lookalike.files import append_jsonl, disk_full, fsync_dir, is_disk_full, read_jsonl, write_json
from lookalike.training.config import TrainConfig

LINKS = ("last", "best", "state")


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

    @property
    def generations(self) -> Path:
        return self.root / "generations"

    @property
    def current(self) -> Path:
        return self.root / "current"

    def pools_path(self, epoch: int) -> Path:
        """The pools mined to serve from ``epoch`` on (one file: nothing to disagree with)."""
        return self.root / "pools" / f"e{epoch:06d}.npz"

    def write_config(self, config: TrainConfig, argv: list[str] | None = None) -> None:
        write_json(
            self.config_path,
            {
                "lookalike_version": __version__,
                "argv": list(sys.argv[1:] if argv is None else argv),
                "config": config.to_dict(),
                "launches": self.launches(),
            },
        )

    def launches(self) -> list[dict[str, Any]]:
        """How each start or resume of the run was made (processes, backend, batch share)."""
        if not self.config_path.is_file():
            return []
        stored = json.loads(self.config_path.read_text(encoding="utf-8"))
        return list(stored.get("launches", []))

    def record_launch(self, launch: dict[str, Any]) -> None:
        """Add how this start or resume runs to config.json (rewritten atomically)."""
        stored = json.loads(self.config_path.read_text(encoding="utf-8"))
        stored["launches"] = [*stored.get("launches", []), launch]
        write_json(self.config_path, stored)

    def read_config(self) -> TrainConfig:
        """The config a run was started with (for --resume)."""
        if not self.config_path.is_file():
            raise ConfigError(f"{self.root}: not a lookalike run folder (no config.json)")
        try:
            stored = json.loads(self.config_path.read_text(encoding="utf-8"))
            return TrainConfig.from_dict(stored["config"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.config_path}: unreadable run config ({exc})") from exc

    def holds_run(self) -> bool:
        """Whether a run was started here (a config and a committed save)."""
        return self.config_path.exists() and (self.current.exists() or self.last.exists())

    def committed(self) -> Path | None:
        """The generation folder ``current`` points to, if any commit completed."""
        return self.current.resolve() if self.current.is_dir() else None

    def log_epoch(self, record: dict[str, Any]) -> None:
        append_jsonl(self.metrics_path, record)

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)[0]

    def truncate_metrics(self, epochs_done: int) -> None:
        """Cut a torn last line and the records of epochs after the committed state (a kill
        between logging an epoch and committing it), in place: the history before stays."""
        if not self.metrics_path.exists():
            return
        records, offsets = read_jsonl(self.metrics_path)
        keep = next((offset for record, offset in zip(records, offsets, strict=True)
                     if record.get("epoch", 0) > epochs_done), None)
        if keep is None:  # every record is committed; only a torn tail may need cutting
            keep = offsets[-1] + len(json.dumps(records[-1])) + 1 if records else 0
        if keep < self.metrics_path.stat().st_size:
            os.truncate(self.metrics_path, keep)

    def commit(self, write: Callable[[Path], None]) -> Path:
        """Write a new generation with ``write(folder)`` and switch ``current`` to it.

        ``write`` fills ``folder`` with last/, best/ and state/ (files written atomically and
        fsynced). The folder is renamed into place and fsynced, then ``current`` is replaced
        in one rename; only then is the generation before the previous one removed.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        self.generations.mkdir(exist_ok=True)
        previous = self.committed()
        number = 1 + max((int(p.name[1:]) for p in self.generations.glob("g[0-9]*")
                          if p.name[1:].isdigit()), default=0)
        final = self.generations / f"g{number:06d}"
        staging = self.generations / f".g{number:06d}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            write(staging)
            fsync_dir(staging)
            os.rename(staging, final)
            fsync_dir(self.generations)
            link = self.root / ".current.new"
            link.unlink(missing_ok=True)
            link.symlink_to(Path("generations") / final.name)
            os.replace(link, self.current)
            fsync_dir(self.root)
        except BaseException as exc:  # an unfinished generation is never pointed to
            shutil.rmtree(staging, ignore_errors=True)
            if is_disk_full(exc) and not isinstance(exc, DiskFullError):
                raise disk_full(staging) from exc
            raise
        self.link_checkpoints()
        self.remove_old_generations(keep={final, previous})
        return final

    def link_checkpoints(self) -> None:
        """``last``, ``best`` and ``state`` lead through ``current`` (made once)."""
        for name in LINKS:
            path = self.root / name
            if not path.is_symlink():
                if path.exists():  # a folder from a run made before generations
                    shutil.rmtree(path)
                path.symlink_to(Path("current") / name)

    def remove_old_generations(self, keep: set[Path | None]) -> None:
        """Generations that are neither current nor previous, and unfinished ones."""
        kept = {p.resolve() for p in keep if p is not None}
        if not self.generations.is_dir():
            return
        for folder in self.generations.iterdir():
            if folder.resolve() not in kept:
                shutil.rmtree(folder, ignore_errors=True)

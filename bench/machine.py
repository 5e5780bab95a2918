"""The machine and the run a benchmark's JSON records (shared by bench scripts)."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    """The CPU's model name from Linux's /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def versions(packages: Iterable[str]) -> dict[str, str]:
    """The installed version of each distribution, by name; missing ones are left out."""
    found = {}
    for package in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    return found


def machine(packages: Mapping[str, str]) -> dict[str, Any]:
    """CPU, core count, platform and Python, then ``packages`` (name -> version)."""
    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), **packages}


class RunInfo:
    """When a run started and the load average then; ``info()`` for its JSON at the end."""

    def __init__(self) -> None:
        self.started = datetime.now(timezone.utc)
        self.load_before = os.getloadavg()[0]

    def seconds(self) -> float:
        """Wall-clock seconds since the start."""
        return (datetime.now(timezone.utc) - self.started).total_seconds()

    def info(self, total_s: float | None = None) -> dict[str, Any]:
        """The start date, ``total_s`` when given, and the load average before and now."""
        out: dict[str, Any] = {"date": self.started.isoformat(timespec="seconds")}
        if total_s is not None:
            out["total_s"] = total_s
        out["load_average_before"] = self.load_before
        out["load_average_after"] = os.getloadavg()[0]
        return out


def git_commit(tree: str | os.PathLike[str] | None = None) -> str:
    """The checkout's commit (all 40 hex digits, which name it in any clone), with
    ``+changes`` when the work tree differs from it."""
    here = str(tree if tree is not None else Path(__file__).parent)
    out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"],  # the full hash
                         capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", here, "status", "--porcelain"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return (out or "unknown") + ("+changes" if dirty else "")

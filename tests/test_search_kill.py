"""``kill -9`` at random moments: ``index build`` rerun until it finishes ends identical to
an uninterrupted build, and ``index add`` / ``remove`` killed while another process keeps
reading the store leave it consistent after every kill, without the reader ever seeing a
broken store or results that disagree with the count.

The commands run in subprocesses (``RUNNER``) that say "ready" once their imports are done;
each is killed after a seeded random delay within the time the same command takes when left
alone, so the kills fall in start-up, embedding, writing and committing alike. A few kills
run in the quick set, at least 10 of each kind in the slow one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lookalike.errors import SearchIndexError
from lookalike.search import Index
from lookalike.search.vectors import stored_ids

from .conftest import images_of, write_class_folder
from .test_search_disk_full import folder_contents

CHUNK = 4  # items per saved chunk: 96 items, 24 chunks, many moments to be killed at
ROOT = Path(__file__).resolve().parents[1]
RUNNER = """
import sys
import lookalike.search.build as build
build.CHUNK_ITEMS = int(sys.argv[1])
import lookalike.models, lookalike.search.index  # the imports, before the kill window
from lookalike.cli import main
print("ready", flush=True)
sys.exit(main(sys.argv[2:]))
"""
READER = """
import json, sys, time
from pathlib import Path
import numpy as np
from lookalike.search import Index
from lookalike.search.vectors import stored_ids
folder, stop = sys.argv[1], Path(sys.argv[2])
rng = np.random.default_rng(0)
checks, problems = 0, []
print("ready", flush=True)
while not stop.exists():
    try:
        with Index.open(folder) as index:
            for _ in range(5):
                hits = index.search_embeddings(rng.normal(size=(4, 16)), k=3)
                if any(len(row) != 3 for row in hits):
                    problems.append(f"k=3 gave {[len(row) for row in hits]} hits")
                ids = stored_ids(index.vectors).tolist()
                records, generation = index.store.records_at(ids)
                if generation == index.generation and len(records) != len(index):
                    problems.append(f"{len(index)} vectors but {len(records)} rows")
                checks += 1
                index.refresh()
                time.sleep(0.001)  # leave the writer a core
    except Exception as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"checks": checks, "problems": problems[:10]}), flush=True)
"""


def environment() -> dict[str, str]:
    # one thread: the same arithmetic in every run, and the 2 cores left to the others
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT)}


def run(argv: list[str], kill_after: float | None,
        runner: tuple[str, ...] = (RUNNER, str(CHUNK))) -> tuple[bool, float]:
    """Run ``lookalike argv`` through ``runner`` (a script that prints "ready", then its
    arguments); SIGKILL it ``kill_after`` seconds after it is ready (None: let it finish).
    Returns (whether it finished by itself, seconds from ready to the end)."""
    process = subprocess.Popen([sys.executable, "-c", *runner, *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=environment(), cwd=ROOT)
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n", process.communicate()[1]
    ready = time.monotonic()
    try:
        _, err = process.communicate(timeout=kill_after if kill_after is not None else 300)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.communicate()
        return False, time.monotonic() - ready
    assert process.returncode == 0, err
    return True, time.monotonic() - ready


def build_argv(checkpoint: Path, images: Path, out: Path) -> list[str]:
    return ["index", "build", "--checkpoint", str(checkpoint), "--images", str(images),
            "--out", str(out), "--batch-size", str(CHUNK), "--quiet"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_class_folder(tmp_path_factory.mktemp("kill") / "images", per_class=32)


@pytest.fixture(scope="module")
def uninterrupted(checkpoint: Path, collection: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], float]:
    """The build left alone (in a subprocess too, so with the same arithmetic), and how
    long it took from ready to the end."""
    out = tmp_path_factory.mktemp("uninterrupted") / "index"
    finished, seconds = run(build_argv(checkpoint, collection, out), None)
    assert finished
    return folder_contents(out), seconds


def build_phase(out: Path) -> str:
    """Where a killed build was, from what it left."""
    partial = out.with_name(out.name + ".partial")
    if out.exists():
        return "renamed"
    if (partial / "model").exists() or (partial / "index.sqlite").exists():
        return "writing"
    if list(partial.glob("embeddings/*.npy")):
        return "embedding"
    return "start-up"


def kill_builds(checkpoint: Path, collection: Path, out: Path, kills: int, seed: int,
                uninterrupted: tuple[dict[str, Any], float]) -> list[str]:
    """Kill ``index build`` ``kills`` times at random moments, rerunning it after each kill
    (and starting over when it finishes, or was killed once its folder was in place, before
    all the kills are done); every index it ends with must equal the uninterrupted one.
    Returns the phase each kill fell in."""
    reference, seconds = uninterrupted
    rng = random.Random(seed)
    argv = build_argv(checkpoint, collection, out)
    phases: list[str] = []
    while True:
        finished, _ = run(argv, rng.uniform(0, seconds) if len(phases) < kills else None)
        if not finished:
            phases.append(build_phase(out))
            if not out.exists():  # a killed build leaves the whole index or none
                with pytest.raises(SearchIndexError, match="no such index folder"):
                    Index.open(out)
                continue  # rerun it
        assert folder_contents(out) == reference, f"after kills in {phases}"
        assert not out.with_name(out.name + ".partial").exists()
        if len(phases) >= kills:
            return phases
        shutil.rmtree(out)  # it finished before the kill: build again, to be killed


def test_index_build_killed_at_random_moments_ends_identical(
        checkpoint: Path, collection: Path, tmp_path: Path,
        uninterrupted: tuple[dict[str, Any], float]) -> None:
    kill_builds(checkpoint, collection, tmp_path / "index", kills=3, seed=1,
                uninterrupted=uninterrupted)


@pytest.mark.slow
def test_index_build_killed_a_dozen_times_ends_identical(
        checkpoint: Path, collection: Path, tmp_path: Path,
        uninterrupted: tuple[dict[str, Any], float]) -> None:
    phases = kill_builds(checkpoint, collection, tmp_path / "index", kills=12, seed=2,
                         uninterrupted=uninterrupted)
    assert len(set(phases)) >= 2, phases


# -- add / remove killed while another process reads ------------------------------------------


class Reader:
    """``READER`` in a subprocess: opens the index and searches it until told to stop."""

    def __init__(self, folder: Path, stop: Path) -> None:
        self.stop = stop
        self.process = subprocess.Popen([sys.executable, "-c", READER, str(folder), str(stop)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=environment(), cwd=ROOT)
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == "ready\n", self.process.communicate()[1]

    def result(self) -> dict[str, Any]:
        self.stop.touch()
        out, err = self.process.communicate(timeout=120)
        assert self.process.returncode == 0, err
        return dict(json.loads(out.strip().splitlines()[-1]))


def consistent_ids(folder: Path) -> tuple[list[int], int]:
    """The store's ids (its vectors' and its rows', which must agree) and next id."""
    with Index.open(folder) as index:
        ids = index.store.all_ids().tolist()
        assert sorted(stored_ids(index.vectors).tolist()) == ids
        return ids, int(index.store.meta["next_id"])


def kill_changes(checkpoint: Path, images: tuple[Path, Path], kills: int, seed: int,
                 tmp_path: Path) -> None:
    """Alternate ``index add`` and ``index remove``, each killed at a random moment (or
    let finish when the delay is longer than the command), while a reader runs."""
    base, new = images
    folder = tmp_path / "index"
    Index.build(checkpoint, base, folder, progress=False, log=lambda _: None).close()
    rng = random.Random(seed)
    reader = Reader(folder, tmp_path / "stop")
    seconds: dict[str, float] = {}
    killed = 0
    step = 0
    while killed < kills:
        command = ("add", "remove")[step % 2]
        step += 1
        before, next_id = consistent_ids(folder)
        if command == "add":
            argv = ["index", "add", "--index", str(folder), "--images", str(new), "--quiet"]
            after = before + list(range(next_id, next_id + len(images_of(new))))
        else:
            gone = rng.sample(before, 3)
            argv = ["index", "remove", "--index", str(folder), *map(str, gone)]
            after = [i for i in before if i not in gone]
        if command not in seconds:  # the first of each runs whole: how long it takes
            finished, seconds[command] = run(argv, None)
        else:
            finished, _ = run(argv, rng.uniform(0, seconds[command]))
            killed += not finished
        ids, _ = consistent_ids(folder)
        assert ids == after if finished else ids in (before, after), (command, finished)
    finished, _ = run(["index", "remove", "--index", str(folder), str(ids[0])], None)
    assert finished  # the next change clears what the killed ones left
    with Index.open(folder) as index:
        current = f"vectors-{index.generation}.faiss"
    assert sorted(p.name for p in folder.iterdir()) == ["index.sqlite", "model", current]
    result = reader.result()
    assert result["problems"] == [] and result["checks"] > 0, result


@pytest.fixture
def change_images(tmp_path: Path) -> tuple[Path, Path]:
    """The images of the store (3 x 8) and those each ``index add`` adds (6)."""
    return (write_class_folder(tmp_path / "base", classes=3, per_class=8, seed=1),
            write_class_folder(tmp_path / "new", classes=1, per_class=6, seed=2) / "class_0")


def test_add_and_remove_killed_while_another_process_reads(
        checkpoint: Path, change_images: tuple[Path, Path], tmp_path: Path) -> None:
    kill_changes(checkpoint, change_images, kills=3, seed=3, tmp_path=tmp_path)


@pytest.mark.slow
def test_add_and_remove_killed_a_dozen_times_while_read(
        checkpoint: Path, change_images: tuple[Path, Path], tmp_path: Path) -> None:
    kill_changes(checkpoint, change_images, kills=12, seed=4, tmp_path=tmp_path)

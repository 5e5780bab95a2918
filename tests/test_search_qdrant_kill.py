"""``kill -9`` of ``index build --backend qdrant`` at random moments (local mode): each
rerun continues, and the index it ends with answers exactly as an uninterrupted build's,
over one collection behind the alias, with no staging collection or ``.partial`` left.
Until the switch, the alias is absent (a first build): the folder does not open.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from lookalike.errors import SearchIndexError
from lookalike.search import Index

from .conftest import images_of, write_class_folder
from .test_search_kill import run as kill_run

pytest.importorskip("qdrant_client")

RUNNER = """
import sys
import lookalike.search.build as build
import lookalike.search.qdrant.upload as upload
build.CHUNK_ITEMS = 8
upload.UPLOAD_BATCH = 8  # 96 items: 12 upserts, many moments to be killed at
import lookalike.models, lookalike.search.index, qdrant_client  # imports before the window
from lookalike.cli import main
print("ready", flush=True)
sys.exit(main(sys.argv[1:]))
"""


def run(argv: list[str], kill_after: float | None) -> tuple[bool, float]:
    """``test_search_kill.run`` with this file's runner."""
    return kill_run(argv, kill_after, runner=(RUNNER,))


def answers(folder: Path, queries: list[str]) -> list[Any]:
    """What the index answers: every query's hits (ids, distances, metadata) and its size."""
    with Index.open(folder) as index:
        hits = [[(h.id, round(h.distance, 6), h.source, h.label) for h in row]
                for row in index.search(queries, k=10)]
        return [len(index), index.labels(), hits]


def collections(store: Path) -> list[str]:
    from lookalike.search.qdrant.connection import connect, disconnect

    location = str(store.resolve())
    client = connect(location)
    try:
        return sorted(c.name for c in client.get_collections().collections)
    finally:
        disconnect(location)


def test_a_qdrant_build_killed_at_random_moments_ends_as_an_uninterrupted_one(
        checkpoint: Path, tmp_path: Path) -> None:
    images = write_class_folder(tmp_path / "images", per_class=32)
    queries = images_of(images)[::7]

    def argv(out: Path, store: Path) -> list[str]:
        return ["index", "build", "--checkpoint", str(checkpoint), "--images", str(images),
                "--out", str(out), "--backend", "qdrant", "--qdrant", str(store),
                "--collection", "items", "--batch-size", "8", "--quiet"]

    finished, seconds = run(argv(tmp_path / "alone", tmp_path / "alone-store"), None)
    assert finished
    reference = answers(tmp_path / "alone", queries)
    out, store = tmp_path / "index", tmp_path / "store"
    rng, kills = random.Random(3), 0
    while True:
        finished, _ = run(argv(out, store), rng.uniform(0, seconds) if kills < 4 else None)
        if not finished:
            kills += 1
            if not out.exists():
                with pytest.raises(SearchIndexError, match="no such index folder"):
                    Index.open(out)
                continue
        assert answers(out, queries) == reference, f"after {kills} kills"
        assert not out.with_name(out.name + ".partial").exists()
        assert len(collections(store)) == 1  # the staging collection, now behind the alias
        if kills >= 4:
            return
        shutil.rmtree(out)  # it finished before the kill: build again, to be killed
        shutil.rmtree(store)

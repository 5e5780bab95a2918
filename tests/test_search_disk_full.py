"""A full disk during ``index build``, ``add`` and ``remove``: one line naming the file and
saying the disk is full, nothing committed lost, and the same command, once there is room,
ends exactly as if the disk had never been full.

Two ways to fill the disk: ENOSPC injected at each write site (every library's writer:
numpy chunks, the stamp, the model copy, FAISS vectors, SQLite rows and commit), and a real
small tmpfs that the test mounts (as root; skipped otherwise), fills, then enlarges.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest

from lookalike.cli import main
from lookalike.errors import DiskFullError
from lookalike.search import Index
from lookalike.search import build as build_module
from lookalike.search import store as store_module
from lookalike.search.vectors import stored_ids, stored_vectors

from .conftest import fails, images_of
from .test_search import CountingEmbed, folder_state

CHUNK = 8  # 48 items: 6 chunks, so a build can fail (and resume) between chunks
FULL = "the disk is full"


def build_argv(checkpoint: Path, images: Path, out: Path) -> list[str]:
    return ["index", "build", "--checkpoint", str(checkpoint), "--images", str(images),
            "--out", str(out), "--quiet"]


def folder_contents(folder: Path) -> dict[str, Any]:
    """What two builds of the same items by the same model share, byte for byte: ids,
    vector bytes, rows (less when each was added), meta (less when it was built), the model
    copy, and the folder's file names (no leftovers)."""
    with Index.open(folder) as index:
        ids = stored_ids(index.vectors)
        order = np.argsort(ids)
        vectors = stored_vectors(index.vectors)[order].tobytes()
    with contextlib.closing(sqlite3.connect(f"file:{folder / 'index.sqlite'}?mode=ro",
                                            uri=True)) as db:
        rows = db.execute("SELECT id, source, path, label, fingerprint, image FROM items "
                          "ORDER BY id").fetchall()
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key != 'created_at'"))
    return {"ids": ids[order].tolist(), "vectors": vectors, "rows": rows, "meta": meta,
            "model": {p.name: p.read_bytes() for p in (folder / "model").iterdir()},
            "files": sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))}


@pytest.fixture(scope="module")
def reference(checkpoint: Path, tiny_folder: Path,
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An index of tiny_folder built in one go on a roomy disk, chunk by chunk like the
    builds under test (the chunk size decides the batches, hence the last bits)."""
    out = tmp_path_factory.mktemp("reference") / "index"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build_module, "CHUNK_ITEMS", CHUNK)
        assert main(build_argv(checkpoint, tiny_folder, out)) == 0
    return folder_contents(out)


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module, "CHUNK_ITEMS", CHUNK)


def enospc(*args: Any, **kwargs: Any) -> NoReturn:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def database_full(*args: Any, **kwargs: Any) -> NoReturn:
    raise sqlite3.OperationalError("database or disk is full")


class FailOnCall:
    """``function`` that fails with ENOSPC on its ``n``-th call (counting from 1)."""

    def __init__(self, function: Callable[..., Any], n: int) -> None:
        self.function, self.n, self.calls = function, n, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.n:
            enospc()
        return self.function(*args, **kwargs)


class FullDatabase:
    """A SQLite connection whose statements beginning with ``verb`` fail as on a full disk."""

    def __init__(self, db: sqlite3.Connection, verb: str) -> None:
        self.db, self.verb = db, verb

    def _check(self, sql: str) -> None:
        if sql.lstrip().upper().startswith(self.verb):
            database_full()

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self.db.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self.db.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


# -- injected ENOSPC at each write site of a build ---------------------------------------------

BUILD_SITES: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], str, int]] = {
    # site: (how it fails, the file the error names, items embedded again by the rerun)
    "stamp": (lambda mp: mp.setattr(Path, "write_bytes", enospc), "build.json", 48),
    "chunk": (lambda mp: mp.setattr(build_module, "open", FailOnCall(builtins.open, 3),
                                    raising=False),
              "embeddings/0000000016.npy", 48 - 2 * CHUNK),
    "model": (lambda mp: mp.setattr(shutil, "copyfile", enospc), "model/model.safetensors", 0),
    "rows": (lambda mp: mp.setattr(store_module, "_insert", database_full), "index.sqlite", 0),
    "vectors": (lambda mp: mp.setattr(store_module, "open", enospc, raising=False),
                "vectors-0.faiss", 0),
}


@pytest.mark.parametrize("site", BUILD_SITES)
def test_a_build_that_fills_the_disk_resumes_exactly(
        site: str, checkpoint: Path, tiny_folder: Path, tmp_path: Path,
        reference: dict[str, Any], chunked: None, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    inject, named, embedded_again = BUILD_SITES[site]
    out = tmp_path / "index"
    argv = build_argv(checkpoint, tiny_folder, out)
    with monkeypatch.context() as patch:
        inject(patch)
        error = fails(capsys, argv)
    assert f"{out}.partial/{named}: {FULL}" in error
    assert not out.exists()
    assert not list(tmp_path.rglob(".*.tmp"))  # a failed write leaves no temporary file

    counting = CountingEmbed()
    monkeypatch.setattr(build_module, "embed_everywhere", counting)
    assert main(argv) == 0
    assert counting.items == embedded_again  # the chunks saved before the failure are kept
    assert folder_contents(out) == reference
    assert not (tmp_path / "index.partial").exists()


# -- injected ENOSPC in add and remove: the store stays as it was ----------------------------

CHANGE_SITES: dict[str, tuple[str, Callable[[pytest.MonkeyPatch, Index], None], str]] = {
    "add/vectors": ("add", lambda mp, ix: mp.setattr(store_module, "open", enospc,
                                                     raising=False), "vectors-1.faiss"),
    "add/rows": ("add", lambda mp, ix: mp.setattr(store_module, "_insert", database_full),
                 "index.sqlite"),
    "add/commit": ("add", lambda mp, ix: mp.setattr(ix.store, "_db",
                                                    FullDatabase(ix.store._db, "COMMIT")),
                   "index.sqlite"),
    "remove/vectors": ("remove", lambda mp, ix: mp.setattr(store_module, "open", enospc,
                                                           raising=False), "vectors-1.faiss"),
    "remove/rows": ("remove", lambda mp, ix: mp.setattr(ix.store, "_db",
                                                        FullDatabase(ix.store._db, "DELETE")),
                    "index.sqlite"),
    "remove/commit": ("remove", lambda mp, ix: mp.setattr(ix.store, "_db",
                                                          FullDatabase(ix.store._db, "COMMIT")),
                      "index.sqlite"),
}


@pytest.mark.parametrize("site", CHANGE_SITES)
def test_a_change_that_fills_the_disk_changes_nothing(site: str, checkpoint: Path,
                                                      tiny_folder: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    command, inject, named = CHANGE_SITES[site]
    folder = tmp_path / "index"
    Index.build(checkpoint, tiny_folder, folder, progress=False, log=lambda _: None).close()
    before = folder_state(folder)
    new = images_of(tiny_folder)[:3]

    def change(index: Index) -> None:
        if command == "add":
            index.add(new, progress=False)
        else:
            index.remove([3, 4])

    with Index.open(folder) as index:
        with monkeypatch.context() as patch:
            inject(patch, index)
            with pytest.raises(DiskFullError) as raised:
                change(index)
        message = str(raised.value)
        assert message.startswith(f"{folder / named}: {FULL}") and "\n" not in message
        assert folder_state(folder) == before and len(index) == 48
        with Index.open(folder) as other:  # another process sees the old generation, whole
            assert other.generation == 0 and len(other) == 48
        change(index)  # the same handle, once there is room
        expected = [*range(48), 48, 49, 50] if command == "add" \
            else [i for i in range(48) if i not in (3, 4)]
    with Index.open(folder) as after:
        assert after.store.all_ids().tolist() == expected
        assert sorted(stored_ids(after.vectors).tolist()) == expected


def test_a_full_disk_in_index_add_is_one_line(checkpoint: Path, tiny_folder: Path,
                                              tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "index"
    Index.build(checkpoint, tiny_folder, folder, progress=False, log=lambda _: None).close()
    monkeypatch.setattr(store_module, "_insert", database_full)
    error = fails(capsys, ["index", "add", "--index", str(folder), "--images",
                           images_of(tiny_folder)[0], "--quiet"])
    assert f"{folder / 'index.sqlite'}: {FULL}" in error


# -- a real small disk (tmpfs, mounted by the test) ---------------------------------------------


class SmallDisk:
    """A tmpfs at ``path`` whose size the test sets, and a filler file to use it up."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def resize(self, kib: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={kib}k", str(self.path)], check=True)

    def clear(self) -> None:
        for entry in self.path.iterdir():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    def fill(self, leave: int = 0) -> Path:
        """Use up every free byte but ``leave``; returns the filler (delete it for room)."""
        filler = self.path / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, bytes(4096))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        os.truncate(filler, max(0, filler.stat().st_size - leave))
        return filler


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point = tmp_path / "disk"
    point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield SmallDisk(point)
    finally:
        if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], check=True)


def test_a_build_on_a_disk_too_small_resumes_once_it_grows(
        small_disk: SmallDisk, checkpoint: Path, tiny_folder: Path, chunked: None,
        reference: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """Disks from 4 KiB up, each too small somewhere: each build fails with one line; the
    disk grows; the same command finishes; the index equals the one built on a roomy disk."""
    out = small_disk.path / "index"
    argv = build_argv(checkpoint, tiny_folder, out)
    failed_at: list[str] = []
    for kib in range(4, 400, 12):
        small_disk.clear()
        small_disk.resize(kib)
        capsys.readouterr()
        if main(argv) == 0:
            break
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and error.startswith("lookalike: error: "), error
        where, _, what = error.removeprefix("lookalike: error: ").partition(": ")
        assert what.startswith(FULL) and Path(where).is_relative_to(small_disk.path), error
        failed_at.append(str(Path(where).relative_to(small_disk.path)))
        assert not out.exists()
        small_disk.resize(1024)
        assert main(argv) == 0, f"the rerun after a full disk at {kib} KiB failed"
        assert folder_contents(out) == reference, f"full at {kib} KiB"
    else:
        pytest.fail("the build never fitted")
    assert folder_contents(out) == reference
    # the sizes tried fill the disk in each phase: chunks, model copy, metadata
    assert any(f.startswith("index.partial/embeddings/") for f in failed_at), failed_at
    assert any(f.startswith("index.partial/model/") for f in failed_at), failed_at
    assert "index.partial/index.sqlite" in failed_at, failed_at


@pytest.mark.parametrize("command", ["add", "remove"])
@pytest.mark.parametrize("room", ["none", "vectors only"])
def test_a_change_on_a_full_disk_keeps_the_store(command: str, room: str,
                                                 small_disk: SmallDisk, checkpoint: Path,
                                                 tiny_folder: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """With no room for the new vectors file, or room for it but not for SQLite's journal:
    one line naming that file, the store unchanged; with room, the same change as on a roomy
    disk."""
    roomy, folder = tmp_path / "index", small_disk.path / "index"
    Index.build(checkpoint, tiny_folder, roomy, progress=False, log=lambda _: None).close()
    shutil.copytree(roomy, folder)
    before = folder_contents(folder)

    def argv(index: Path) -> list[str]:
        if command == "add":
            return ["index", "add", "--index", str(index), "--images",
                    str(tiny_folder / "class_0"), "--quiet"]
        return ["index", "remove", "--index", str(index), "3", "4"]

    assert main(argv(roomy)) == 0
    vectors_size = (roomy / "vectors-1.faiss").stat().st_size
    leave, named = (0, "vectors-1.faiss") if room == "none" else \
        (-(-vectors_size // 4096) * 4096, "index.sqlite")  # whole tmpfs pages
    filler = small_disk.fill(leave)
    assert f"{folder / named}: {FULL}" in fails(capsys, argv(folder))
    assert folder_contents(folder) == before
    filler.unlink()
    assert main(argv(folder)) == 0
    assert folder_contents(folder) == folder_contents(roomy)

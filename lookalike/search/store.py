"""An index folder on disk: FAISS vectors, SQLite metadata and the model that made them.

Layout of an index folder::

    index.sqlite        meta (format, version, model fingerprint, dim, distance, spec, generation)
                        items (id, source, path, label, added_at, fingerprint, image)
    vectors-<G>.faiss   the vectors of generation G
    model/              a copy of the checkpoint, so queries are embedded by the same model

Why generations: a change (add, remove) must update two files together. It first writes
``vectors-<G+1>.faiss`` (atomically), then commits the rows and ``generation = G+1`` in one
SQLite transaction, then deletes the old file. A crash in between leaves generation G in
force and an orphan file that the next change deletes; the folder never pairs vectors with
rows they do not match. Readers take one SQLite read transaction for the generation, its
rows and its vectors file (``read_vectors``, ``records_at``): a commit waits for them, and
old files are deleted only under the write lock, so a reader in another process never sees
a generation's vectors with another's rows. New indexes are written into a sibling
``.partial`` folder and renamed into place when whole (see ``build.py``), so a folder that
opens is complete.

Format 2 states the model's ``distance``; format 1 folders (a FAISS ``metric`` instead, and
Euclidean distances always) still open (``reported.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from lookalike.errors import DiskFullError, SearchIndexError
from lookalike.files import atomic_path, disk_full, fsync_dir, is_disk_full

FORMAT = "lookalike-index"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
_REQUIRED = ("fingerprint", "dim", "spec", "generation", "next_id")
_REQUIRED_BY_VERSION = {1: ("metric",), 2: ("distance",)}
DATABASE = "index.sqlite"
MODEL_DIR = "model"
SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")
"""What SQLite keeps next to a database; a stale journal must go with its database."""
ITEM_IDS = range(-(2**63), 2**63)
"""The ids SQLite can store: any other integer is no item of any index."""

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,       -- a file path, or e.g. fashion-mnist/test#12
    path TEXT,                  -- absolute image path when the item is a file
    label TEXT,                 -- class name when known
    added_at TEXT NOT NULL,     -- ISO 8601, UTC
    fingerprint TEXT NOT NULL,  -- the model that embedded it
    image BLOB                  -- PNG bytes for items that are not files (in-memory arrays)
);
"""


@dataclass(frozen=True)
class ItemRecord:
    """What the index knows about one item (besides its vector)."""

    id: int
    source: str
    path: str | None
    label: str | None
    added_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "path": self.path, "label": self.label,
                "added_at": self.added_at}


@dataclass(frozen=True)
class NewItem:
    """A row to insert: id, where it came from, its label, and PNG bytes if not a file."""

    id: int
    source: str
    path: str | None
    label: str | None
    image: bytes | None = None


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def vectors_file(folder: Path, generation: int) -> Path:
    return folder / f"vectors-{generation}.faiss"


def partial_folder(folder: Path) -> Path:
    """Where a build of ``folder`` is written until it is whole."""
    return folder.with_name(folder.name + ".partial")


@contextlib.contextmanager
def disk_full_as(path: str | os.PathLike[str]) -> Iterator[None]:
    """Report a write that fails for lack of space, by any library, as a one-line
    ``DiskFullError`` naming ``path`` (SQLite says "database or disk is full")."""
    try:
        yield
    except DiskFullError:
        raise
    except (OSError, RuntimeError, sqlite3.Error) as exc:
        if is_disk_full(exc) or "database or disk is full" in str(exc):
            raise disk_full(path) from exc
        raise


class IndexStore:
    """Reads and changes one index folder; safe to share between threads."""

    def __init__(self, folder: Path, connection: sqlite3.Connection) -> None:
        self.folder = folder
        self._db = connection
        self._lock = threading.RLock()  # re-entrant: a read transaction runs other reads
        self.meta = self._read_meta()

    # -- creating and opening ------------------------------------------------------------

    @classmethod
    def create(cls, folder: str | os.PathLike[str], meta: dict[str, Any],
               vectors: faiss.Index, items: Iterable[NewItem]) -> IndexStore:
        """Write a new index into the empty ``folder`` (the build's ``.partial`` folder)."""
        folder = Path(folder)
        database = folder / DATABASE
        with disk_full_as(folder):
            folder.mkdir(parents=True, exist_ok=True)
        for suffix in ("", *SQLITE_SIDE_FILES):  # a killed earlier try's, journal included
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        connection = sqlite3.connect(database, check_same_thread=False, isolation_level=None,
                                     timeout=30)
        try:
            with disk_full_as(database):
                connection.executescript(_SCHEMA)
                values = {**meta, "format": FORMAT, "format_version": FORMAT_VERSION,
                          "generation": 0, "next_id": int(meta.get("next_id", 0))}
                # One transaction for all rows: in autocommit mode each row is synced alone
                connection.execute("BEGIN")
                connection.executemany("INSERT INTO meta VALUES (?, ?)",
                                       [(k, json.dumps(v)) for k, v in values.items()])
                _insert(connection, items, values["fingerprint"])
                connection.execute("COMMIT")
            write_faiss(vectors, vectors_file(folder, 0))
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            connection.close()
            raise
        return cls(folder, connection)

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> IndexStore:
        """Open an existing index folder, or raise a one-line ``SearchIndexError``."""
        folder = Path(folder)
        if not folder.is_dir():
            partial = partial_folder(folder)
            hint = (f" (an unfinished build is in {partial}: run `lookalike index build` "
                    "again to resume it)") if partial.exists() else ""
            raise SearchIndexError(f"{folder}: no such index folder{hint}")
        database = folder / DATABASE
        if not database.is_file():
            raise SearchIndexError(f"{folder} is not a lookalike index: {DATABASE} is missing")
        try:
            # isolation_level=None: transactions are begun and ended explicitly (commit)
            connection = sqlite3.connect(f"file:{database}?mode=rw", uri=True,
                                         check_same_thread=False, isolation_level=None,
                                         timeout=30)
            store = cls(folder, connection)
        except sqlite3.DatabaseError as exc:
            raise SearchIndexError(f"{database} is damaged: {exc}") from exc
        try:
            store._check_version()
        except SearchIndexError:
            store.close()
            raise
        return store

    def _read_meta(self) -> dict[str, Any]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        return {key: json.loads(value) for key, value in rows}

    def _check_version(self) -> None:
        where = self.folder / DATABASE
        if self.meta.get("format") != FORMAT:
            raise SearchIndexError(f"{where} is not a lookalike index")
        version = self.meta.get("format_version")
        if version not in READABLE_VERSIONS:
            raise SearchIndexError(
                f"{self.folder} was written in index format {version} (lookalike "
                f"{self.meta.get('lookalike_version', '?')}); this lookalike reads formats "
                f"{', '.join(map(str, READABLE_VERSIONS))}: rebuild it with "
                "`lookalike index build`")
        for key in (*_REQUIRED, *_REQUIRED_BY_VERSION[version]):
            if key not in self.meta:
                raise SearchIndexError(f"{where} is damaged: no {key!r} in its meta table")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reading -------------------------------------------------------------------------

    @property
    def model_dir(self) -> Path:
        return self.folder / MODEL_DIR

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: everything read inside belongs to one committed generation
        (a writer's commit waits until it ends, and old vectors files outlive it)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")  # nothing was written: ends the read

    def generation(self) -> int:
        """The generation committed now (by any process): one small read."""
        try:
            with self._lock:
                row = self._db.execute(
                    "SELECT value FROM meta WHERE key = 'generation'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise SearchIndexError(f"{self.folder / DATABASE} cannot be read: {exc}") from exc
        if row is None:
            raise SearchIndexError(f"{self.folder / DATABASE} is damaged: no 'generation'")
        return int(json.loads(row[0]))

    def read_vectors(self) -> faiss.IndexIDMap2:
        """The FAISS index of the generation committed now, checked against its rows.

        The meta table is read again in the same transaction (``self.meta`` then describes
        the generation returned), so a commit by another process cannot fall in between.
        """
        try:
            with self._reading():
                meta = self._read_meta()
                path = vectors_file(self.folder, int(meta["generation"]))
                if not path.is_file():
                    raise SearchIndexError(f"{self.folder} is incomplete: {path.name} is missing")
                try:
                    index = faiss.read_index(str(path))
                except RuntimeError as exc:
                    raise SearchIndexError(
                        f"{path} is damaged: {str(exc).splitlines()[0]}") from exc
                count = self.count()
        except sqlite3.DatabaseError as exc:
            raise SearchIndexError(f"{self.folder / DATABASE} is damaged: {exc}") from exc
        if not isinstance(index, faiss.IndexIDMap2):
            raise SearchIndexError(f"{path} is damaged: its vectors carry no item ids")
        if index.ntotal != count or index.d != int(meta["dim"]):
            raise SearchIndexError(f"{path} holds {index.ntotal} vectors of dimension "
                                   f"{index.d}, but {DATABASE} describes {count} items of "
                                   f"dimension {meta['dim']}: the folder is damaged")
        self.meta = meta
        return index

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def records(self, ids: Sequence[int]) -> dict[int, ItemRecord]:
        """The records of ``ids`` (unknown ids, any integer among them, are left out), by id."""
        with self._lock:
            return self._records(ids)

    def records_at(self, ids: Sequence[int]) -> tuple[dict[int, ItemRecord], int]:
        """The records of ``ids`` and the generation they belong to, read together."""
        with self._reading():
            return self._records(ids), self.generation()

    def _records(self, ids: Sequence[int]) -> dict[int, ItemRecord]:
        wanted = sorted(_storable(ids))
        found: dict[int, ItemRecord] = {}
        for start in range(0, len(wanted), 900):  # SQLite caps bound parameters
            chunk = wanted[start:start + 900]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT id, source, path, label, added_at FROM items WHERE id IN ({marks})",
                chunk).fetchall()
            found.update((row[0], ItemRecord(*row)) for row in rows)
        return found

    def all_ids(self) -> np.ndarray:
        with self._lock:
            rows = self._db.execute("SELECT id FROM items ORDER BY id").fetchall()
        return np.array([row[0] for row in rows], dtype=np.int64)

    def image_bytes(self, item_id: int) -> bytes | None:
        """The stored PNG of an in-memory item (None for file items and unknown ids)."""
        if int(item_id) not in ITEM_IDS:
            return None
        with self._lock:
            row = self._db.execute("SELECT image FROM items WHERE id = ?",
                                   (int(item_id),)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def labels(self) -> dict[str | None, int]:
        """How many items each label has."""
        with self._lock:
            rows = self._db.execute("SELECT label, COUNT(*) FROM items GROUP BY label").fetchall()
        return {label: int(n) for label, n in rows}

    # -- changing ------------------------------------------------------------------------

    def commit(self, vectors: faiss.Index, *, insert: Iterable[NewItem] = (),
               delete: Sequence[int] = (), meta: dict[str, Any] | None = None) -> None:
        """Make ``vectors`` the new generation together with the row changes, atomically.

        The SQLite write lock is taken first, so a second writer (another process, or
        another ``Index`` on the same folder) waits, and then sees that the folder moved on
        since it was opened: it is refused instead of overwriting the newer generation.
        """
        generation = int(self.meta["generation"]) + 1
        target = vectors_file(self.folder, generation)
        updates = {**(meta or {}), "generation": generation}
        written = False
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                stored = dict(self._db.execute(
                    "SELECT key, value FROM meta WHERE key IN ('generation', 'next_id')"))
                if any(json.loads(stored[key]) != self.meta[key]
                       for key in ("generation", "next_id")):
                    raise SearchIndexError(
                        f"{self.folder} was changed by another writer since it was opened: "
                        "open it again and repeat the change")
                write_faiss(vectors, target)
                written = True
                fsync_dir(self.folder)  # the file is there for good before the rows say so
                with disk_full_as(self.folder / DATABASE):
                    _insert(self._db, insert, self.meta["fingerprint"])
                    self._db.executemany("DELETE FROM items WHERE id = ?",
                                         [(int(i),) for i in delete])
                    self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                         [(k, json.dumps(v)) for k, v in updates.items()])
                    self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if written:
                    target.unlink(missing_ok=True)
                if isinstance(exc, sqlite3.Error):
                    raise SearchIndexError(f"{self.folder / DATABASE}: cannot save the change "
                                           f"({exc}); nothing was changed") from exc
                raise
        self.meta.update(updates)
        self._remove_stale_vectors()

    def _remove_stale_vectors(self) -> None:
        """Delete other generations' vectors files and the temporary files of writers that
        were killed. Under the write lock, so that no other writer is writing its file, and
        only while this generation is still the one in force (else its writer cleans)."""
        current = vectors_file(self.folder, int(self.meta["generation"])).name
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                if self.generation() != int(self.meta["generation"]):
                    return
                for path in (*self.folder.glob("vectors-*.faiss"),
                             *self.folder.glob(".vectors-*.faiss.*.tmp")):
                    if path.name != current:
                        path.unlink(missing_ok=True)
            except (sqlite3.OperationalError, SearchIndexError):
                return  # busy for long, or unreadable: the next change cleans up
            finally:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")


def _storable(ids: Iterable[int]) -> set[int]:
    """The ids among ``ids`` that SQLite can hold (a larger integer is nobody's id)."""
    return {int(i) for i in ids if int(i) in ITEM_IDS}


def _insert(connection: sqlite3.Connection, items: Iterable[NewItem], fingerprint: str) -> None:
    added = utc_now()
    connection.executemany(
        "INSERT INTO items (id, source, path, label, added_at, fingerprint, image) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((item.id, item.source, item.path, item.label, added, fingerprint, item.image)
         for item in items))


def write_faiss(index: faiss.Index, path: Path) -> None:
    """Atomically write a FAISS index file.

    Serialised in memory and written by Python, which raises when the disk is full: FAISS's
    own file writer only prints a failed close to stderr, leaving a short or empty file.
    """
    data = faiss.serialize_index(index)  # (bytes,) uint8
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data.data)

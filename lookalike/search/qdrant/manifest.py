"""A Qdrant index folder: the manifest that names the collection, the model, and the images
of in-memory items.

Layout::

    index.json      format, backend "qdrant", location (URL or local folder), collection
                    (an alias), model fingerprint, dim, distance, where the data came from
    model/          a copy of the checkpoint, so queries are embedded by the same model
    images.sqlite   PNG bytes of items that are not files (in-memory arrays), by id

Each point of the collection carries its item's metadata as payload (``PAYLOAD_FIELDS``),
so any service reading the collection knows what an id is. The collection's own metadata
holds the fingerprint, dimension, distance and the next free id, so a second folder on the
same collection (another service) checks the same model and hands out fresh ids.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lookalike.errors import SearchIndexError
from lookalike.files import write_json
from lookalike.search.store import FORMAT, disk_full_as

MANIFEST = "index.json"
IMAGES = "images.sqlite"
BACKEND = "qdrant"
FORMAT_VERSION = 3
"""Index format 3: a folder whose vectors live elsewhere (FAISS folders are formats 1-2)."""
PAYLOAD_FIELDS = ("id", "source", "path", "label", "added_at", "fingerprint")


def is_qdrant_folder(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / MANIFEST).is_file()


@dataclass(frozen=True)
class Manifest:
    """What ``index.json`` says (``location`` resolved: a URL or an absolute path)."""

    location: str
    collection: str
    fingerprint: str
    dim: int
    distance: str
    data: str | None = None
    checkpoint: str | None = None
    created_at: str = ""
    lookalike_version: str = ""

    def write(self, folder: Path) -> None:
        write_json(folder / MANIFEST, {"format": FORMAT, "format_version": FORMAT_VERSION,
                                       "backend": BACKEND, **asdict(self)})

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            values = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SearchIndexError(f"{path} cannot be read: {exc}") from exc
        if not isinstance(values, dict) or values.get("format") != FORMAT:
            raise SearchIndexError(f"{path} is not a lookalike index manifest")
        if values.get("format_version") != FORMAT_VERSION or values.get("backend") != BACKEND:
            raise SearchIndexError(
                f"{path} describes index format {values.get('format_version')} on backend "
                f"{values.get('backend')!r}; this lookalike reads format {FORMAT_VERSION} on "
                f"{BACKEND!r}: rebuild it with `lookalike index build`")
        fields = set(cls.__dataclass_fields__)
        missing = sorted(f for f in ("location", "collection", "fingerprint", "dim",
                                     "distance") if f not in values)
        if missing:
            raise SearchIndexError(f"{path} is damaged: no {missing[0]!r}")
        return cls(**{k: v for k, v in values.items() if k in fields})


class ImageStore:
    """PNG bytes of in-memory items, by id, in the folder's ``images.sqlite``."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / IMAGES
        self._lock = threading.Lock()
        with disk_full_as(self.path):
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._db.execute("CREATE TABLE IF NOT EXISTS images "
                             "(id INTEGER PRIMARY KEY, png BLOB NOT NULL)")
            self._db.commit()

    def put(self, images: Iterable[tuple[int, bytes]]) -> None:
        with self._lock, disk_full_as(self.path):
            self._db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?)", images)
            self._db.commit()

    def get(self, item_id: int) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT png FROM images WHERE id = ?",
                                   (int(item_id),)).fetchone()
        return None if row is None else bytes(row[0])

    def delete(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM images WHERE id = ?", [(int(i),) for i in ids])
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


def payload_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The payload fields of a point, in ``PAYLOAD_FIELDS`` order."""
    return {name: record.get(name) for name in PAYLOAD_FIELDS}

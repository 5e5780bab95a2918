"""``QdrantIndex``: the ``Index`` API over a Qdrant collection (``Index.open`` returns one
for a folder with an ``index.json`` manifest: ``manifest.py``).

What differs from a FAISS folder, and why:

- The collection is live: a search answers from what the collection holds at that moment,
  so there is no generation to load; ``generation`` counts the changes made through
  lookalike (kept on the collection), and ``refresh`` only re-reads the item count.
- A search returns each neighbour's payload with it, so results and metadata always come
  from the same state of the collection.
- Distances are converted from Qdrant's scores to the model's distance
  (``connection.QDRANT_DISTANCES``); in local mode the search is exact and matches the
  FAISS flat index (``tests/test_search_qdrant.py``), on a server it is Qdrant's HNSW.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from lookalike.data import ImageCollection
from lookalike.distances import get_distance
from lookalike.errors import SearchIndexError
from lookalike.search.build import check_vectors, new_items
from lookalike.search.duplicates import check_duplicate_options, duplicate_groups
from lookalike.search.index import Hit, Index, Neighbors, without_queries
from lookalike.search.qdrant.connection import (
    POINT_IDS,
    connect,
    disconnect,
    qdrant_distance,
    qdrant_errors,
)
from lookalike.search.qdrant.manifest import ImageStore, Manifest
from lookalike.search.qdrant.upload import (
    collection_info,
    collection_meta,
    metadata_of,
    payloads_of,
    upsert_points,
)
from lookalike.search.store import MODEL_DIR, ItemRecord
from lookalike.search.vectors import as_vectors, for_distance

if TYPE_CHECKING:
    import faiss
    from qdrant_client import QdrantClient
    from qdrant_client.models import ScoredPoint

QUERY_BATCH = 256
"""Queries per batched search request (duplicates searches every item)."""


class QdrantIndex(Index):
    """An opened Qdrant index folder; the same methods as a FAISS ``Index``."""

    def __init__(self, folder: Path, manifest: Manifest, client: QdrantClient, *,
                 device: str = "cpu", backbone: nn.Module | None = None) -> None:
        self.folder = folder
        self.manifest = manifest
        self.client = client
        self.images = ImageStore(folder)
        self._closed = False
        self.scores = qdrant_distance(manifest.distance)
        self._generation, self._count = -1, 0
        self._ids: np.ndarray | None = None  # all ids, read once per generation
        self._start_embedding(device, backbone)
        self.refresh()

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, device: str = "cpu",
             backbone: nn.Module | None = None,
             search_options: Any = None) -> QdrantIndex:
        """Open a Qdrant index folder: reach its collection and check that it holds vectors
        of the folder's model, of its dimension (``search_options`` are FAISS knobs:
        ignored)."""
        folder = Path(path)
        manifest = Manifest.read(folder)
        client = connect(manifest.location)
        try:
            check_collection(client, manifest)
            return cls(folder, manifest, client, device=device, backbone=backbone)
        except BaseException:
            disconnect(manifest.location)
            raise

    def close(self) -> None:
        """Give the client back (once: closing twice is harmless)."""
        if self._closed:
            return
        self._closed = True
        self.images.close()
        disconnect(self.manifest.location)

    # -- what it holds ------------------------------------------------------------------

    @property
    def location(self) -> str:
        return self.manifest.location

    @property
    def collection(self) -> str:
        return self.manifest.collection

    def __len__(self) -> int:
        return self._count

    @property
    def vectors(self) -> faiss.IndexIDMap2:
        raise SearchIndexError(f"{self.folder} keeps its vectors in Qdrant collection "
                               f"{self.collection!r}, not in FAISS")

    @property
    def generation(self) -> int:
        return self._generation

    def refresh(self) -> bool:
        """Re-read the count after changes made through lookalike by any process (one
        metadata read when nothing changed). Searches never need it: they are live."""
        meta = collection_meta(self.client, self.location, self.collection)
        generation = int(meta.get("generation", 0))
        if generation == self._generation:
            return False
        with self._write_lock, self._errors("count the points"):
            self._count = int(self.client.count(self.collection, exact=True).count)
            self._generation, self._ids = generation, None
        return True

    @property
    def path(self) -> Path:
        return self.folder

    @property
    def model_dir(self) -> Path:
        return self.folder / MODEL_DIR

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint

    @property
    def dim(self) -> int:
        return self.manifest.dim

    @property
    def distance(self) -> str:
        return self.manifest.distance

    @property
    def metric(self) -> str:
        """Qdrant's distance the collection searches by ("Euclid", "Cosine")."""
        return self.scores.qdrant

    @property
    def kind(self) -> str:
        return "qdrant"

    def info(self) -> dict[str, Any]:
        manifest = self.manifest
        return {"path": str(self.path), "items": len(self), "kind": self.kind,
                "backend": "qdrant", "location": manifest.location,
                "collection": manifest.collection, "distance": self.distance,
                "metric": self.metric, "dim": manifest.dim, "fingerprint": self.fingerprint,
                "spec": {"kind": self.kind}, "labels": self.labels(), "data": manifest.data,
                "checkpoint": manifest.checkpoint, "created_at": manifest.created_at,
                "lookalike_version": manifest.lookalike_version}

    def labels(self) -> dict[str | None, int]:
        """How many items each label has: a facet count (Qdrant counts values; the items
        without a label are the rest)."""
        with self._errors("count the labels"):
            facets = self.client.facet(self.collection, key="label", limit=1_000_000,
                                       exact=True)
            total = int(self.client.count(self.collection, exact=True).count)
        counts: dict[str | None, int] = {str(hit.value): int(hit.count) for hit in facets.hits}
        if total > sum(counts.values()):
            counts[None] = total - sum(counts.values())
        return counts

    def records(self, ids: Sequence[int]) -> dict[int, ItemRecord]:
        wanted = sorted({int(i) for i in ids if int(i) in POINT_IDS})
        found: dict[int, ItemRecord] = {}
        for start in range(0, len(wanted), QUERY_BATCH * 4):
            with self._errors("read items"):
                points = self.client.retrieve(self.collection,
                                              ids=wanted[start:start + QUERY_BATCH * 4],
                                              with_payload=True, with_vectors=False)
            found.update((int(p.id), record_of(p.payload or {}, int(p.id))) for p in points)
        return found

    def _stored_png(self, item_id: int) -> bytes | None:
        """In-memory items' PNGs stay in the folder; file items are read from the path in
        their payload (``Index.image``), never from a path that came from anywhere else."""
        return self.images.get(item_id)

    def _all_ids(self) -> np.ndarray:
        """(N,) every id, ascending, read once per generation."""
        if self._ids is None:
            ids, _ = self._scroll(with_vectors=False)
            self._ids = np.sort(ids)
        return self._ids

    def _scroll(self, with_vectors: bool) -> tuple[np.ndarray, np.ndarray]:
        """Every point's id (N,) and, if asked, vector (N, D), in the collection's order."""
        ids: list[int] = []
        vectors: list[Any] = []
        offset = None
        while True:
            with self._errors("read the points"):
                points, offset = self.client.scroll(self.collection, limit=4 * QUERY_BATCH,
                                                    offset=offset, with_payload=False,
                                                    with_vectors=with_vectors)
            ids += [int(p.id) for p in points]
            if with_vectors:
                vectors += [p.vector for p in points]
            if offset is None:
                break
        array = (np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.manifest.dim)
                 if with_vectors else np.zeros((0, self.manifest.dim), dtype=np.float32))
        return np.array(ids, dtype=np.int64), array

    # -- searching -----------------------------------------------------------------------

    def search_embeddings(self, vectors: Any, k: int = 10) -> list[list[Hit]]:
        """The k items nearest to each of (Q, D) embeddings, with their payloads (read in
        the same request as the neighbours)."""
        self._check_k(k)
        return [[hit_of(rank, point, distance) for rank, (point, distance)
                 in enumerate(zip(row, self._distances_of(row), strict=True), start=1)]
                for row in self._query(self._prepared(vectors), k, with_payload=True)]

    def search_vectors(self, vectors: Any, k: int = 10) -> Neighbors:
        self._check_k(k)
        return self._neighbors(self._query(self._prepared(vectors), k), k)

    def more_like(self, item_ids: Sequence[int], k: int = 10) -> list[list[Hit]]:
        """The k items nearest to items already in the index, each item itself left out."""
        self._check_k(k, extra=1)
        wanted = [int(i) for i in item_ids]
        vectors = self._vectors_of(wanted)
        neighbors = without_queries(wanted, self._neighbors(self._query(vectors, k + 1),
                                                            k + 1), k)
        return self.hits(neighbors)

    def _prepared(self, vectors: Any) -> np.ndarray:
        return for_distance(as_vectors(vectors, self.manifest.dim),
                            get_distance(self.manifest.distance))

    def _vectors_of(self, ids: Sequence[int]) -> np.ndarray:
        """(K, D) the stored vectors of ``ids``, or a one-line error naming a missing one."""
        storable = [i for i in ids if i in POINT_IDS]
        with self._errors("read vectors"):
            points = self.client.retrieve(self.collection, ids=sorted(set(storable)),
                                          with_payload=False, with_vectors=True)
        stored = {int(p.id): p.vector for p in points}
        for item_id in ids:
            if item_id not in stored:
                raise SearchIndexError(f"no such item: {item_id} (no item has this id in "
                                       f"{self.path})")
        return np.asarray([stored[i] for i in ids], dtype=np.float32).reshape(len(ids), -1)

    def _query(self, vectors: np.ndarray, limit: int,
               with_payload: bool = False) -> list[list[ScoredPoint]]:
        """Qdrant's answer for each query vector: its ``limit`` nearest points."""
        from qdrant_client import models

        rows: list[list[ScoredPoint]] = []
        for start in range(0, len(vectors), QUERY_BATCH):
            requests = [models.QueryRequest(query=vector.tolist(), limit=limit,
                                            with_payload=with_payload)
                        for vector in vectors[start:start + QUERY_BATCH]]
            with self._errors("search"):
                answers = self.client.query_batch_points(self.collection, requests=requests)
            rows += [answer.points for answer in answers]
        return rows

    def _distances_of(self, row: Sequence[ScoredPoint]) -> list[float]:
        scores = np.array([p.score for p in row], dtype=np.float64)
        distances: list[float] = self.scores.from_score(scores).astype(np.float32).tolist()
        return distances

    def _neighbors(self, rows: list[list[ScoredPoint]], k: int) -> Neighbors:
        """Rows of points as (Q, k) ids (-1 where fewer were found) and distances."""
        ids = np.full((len(rows), k), -1, dtype=np.int64)
        distances = np.full((len(rows), k), np.inf, dtype=np.float32)
        for r, row in enumerate(rows):
            ids[r, :len(row)] = [int(p.id) for p in row]
            distances[r, :len(row)] = self._distances_of(row)
        return Neighbors(ids, distances)

    # -- changing ------------------------------------------------------------------------

    def add_vectors(self, vectors: Any, collection: ImageCollection,
                    fingerprint: str) -> np.ndarray:
        """Add precomputed embeddings of ``collection``'s items, made by model
        ``fingerprint``: ids are reserved on the collection first, so two folders adding to
        one collection never hand out the same id."""
        self.check_fingerprint(fingerprint, "these vectors")
        array = np.asarray(vectors.detach().cpu().numpy() if hasattr(vectors, "detach")
                           else vectors)
        if array.ndim == 2:
            check_vectors(array, collection)
        prepared = self._prepared(array)
        with self._write_lock:
            meta = collection_meta(self.client, self.location, self.collection)
            start = int(meta.get("next_id", 0))
            ids = np.arange(start, start + len(prepared), dtype=np.int64)
            self._update_meta(next_id=start + len(prepared))
            items = list(new_items(collection, ids))
            self.images.put((item.id, item.image) for item in items if item.image is not None)
            upsert_points(self.client, self.location, self.collection, prepared, ids,
                          payloads_of(items, self.fingerprint))
            self._changed(meta)
        return ids

    def remove(self, ids: Sequence[int]) -> int:
        """Remove items by id; unknown ids are an error (nothing is removed then)."""
        from qdrant_client import models

        wanted = self._removable(ids)
        with self._write_lock:
            meta = collection_meta(self.client, self.location, self.collection)
            with self._errors("remove points"):
                self.client.delete(self.collection, wait=True,
                                   points_selector=models.PointIdsList(points=list[Any](wanted)))
            self.images.delete(wanted)
            self._changed(meta)
        return len(wanted)

    def _update_meta(self, **values: Any) -> None:
        with self._errors("update the collection's metadata"):
            self.client.update_collection(self.collection, metadata=values)

    def _changed(self, meta: dict[str, Any]) -> None:
        """One more generation on the collection, then this handle's count."""
        self._update_meta(generation=int(meta.get("generation", 0)) + 1)
        self.refresh()

    # -- duplicates ----------------------------------------------------------------------

    def duplicates(self, threshold: float, neighbors: int = 10) -> list[list[int]]:
        """Groups of near-identical items (as ``Index.duplicates``): every item's
        ``neighbors`` nearest, searched by Qdrant in batches."""
        check_duplicate_options(threshold, neighbors)
        ids, vectors = self._scroll(with_vectors=True)
        k = min(len(ids), neighbors + 1)
        self._check_k(k, size=len(ids))
        found = self._neighbors(self._query(vectors, k), k)
        return duplicate_groups(ids, found.ids, found.distances, threshold)

    def _errors(self, doing: str) -> Any:
        return qdrant_errors(self.location, f"{doing} in collection {self.collection!r}")


def check_collection(client: QdrantClient, manifest: Manifest) -> None:
    """The collection exists and holds vectors of the manifest's model and dimension."""
    where = f"Qdrant at {manifest.location}"
    with qdrant_errors(manifest.location, f"find collection {manifest.collection!r}"):
        exists = client.collection_exists(manifest.collection)
    if not exists:
        raise SearchIndexError(f"{where}: no collection {manifest.collection!r} (deleted, or "
                               "another server?): rebuild the index or export it again")
    info = collection_info(client, manifest.location, manifest.collection)
    meta = metadata_of(info)
    dim = getattr(info.config.params.vectors, "size", None)
    if dim != manifest.dim:
        raise SearchIndexError(f"{where}: collection {manifest.collection!r} holds vectors of "
                               f"dimension {dim}, but the model in this index folder makes "
                               f"{manifest.dim}: not this index's collection")
    if meta.get("fingerprint") != manifest.fingerprint:
        raise SearchIndexError(f"{where}: collection {manifest.collection!r} holds vectors of "
                               f"model {meta.get('fingerprint')}, but this index folder's "
                               f"model is {manifest.fingerprint}: vectors of different models "
                               "are not comparable")


def record_of(payload: dict[str, Any], point_id: int) -> ItemRecord:
    return ItemRecord(point_id, str(payload.get("source", "")), payload.get("path"),
                      payload.get("label"), str(payload.get("added_at", "")))


def hit_of(rank: int, point: ScoredPoint, distance: float) -> Hit:
    record = record_of(point.payload or {}, int(point.id))
    return Hit(rank, record.id, distance, record.source, record.label, record.path,
               record.added_at)

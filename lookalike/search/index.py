"""``Index``: a searchable image collection (vectors + metadata + model), the Python API.

    index = Index.build("runs/demo/train/best", "fashion-mnist", "indexes/fm", split="test")
    index = Index.open("indexes/fm")
    hits = index.search(["shoe.png"], k=10)        # one list of Hit per query
    index.add("new-photos/")                       # embedded by the index's own model
    index.remove([3, 17])

The index keeps a copy of the model that embedded its items, so queries are embedded by
the same model and vectors from any other model are refused (their fingerprints differ).
It searches by the distance that model was trained with (``EmbedderConfig.distance``), and
every distance it reports (search, duplicates' threshold) is in that unit.

An open ``Index`` follows its folder: when another handle or process commits a change,
``search`` and ``more_like`` answer from the new generation (their results and its rows
are read together), and ``refresh()`` loads it for everything else (``len``, ``sample_ids``).
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

import faiss
import numpy as np
import torch
from PIL import Image
from torch import nn

from lookalike.data import (
    DEFAULT_MAX_PIXELS,
    UNLABELLED,
    FileCollection,
    ImageCollection,
    decode_image,
    open_collection,
    scan_images,
)
from lookalike.data.folder import has_loose_images
from lookalike.distributed import barrier, current_group, process_device
from lookalike.errors import ConfigError, DataError, SearchIndexError
from lookalike.export import ONNX_FILE, Runtime, TorchRuntime, choose_runtime
from lookalike.files import write_bytes
from lookalike.models import Embedder, load_checkpoint
from lookalike.search.build import (
    check_vectors,
    embed_collection,
    new_items,
    write_index_folder,
)
from lookalike.search.duplicates import check_duplicate_options, duplicate_groups
from lookalike.search.idmap import clone
from lookalike.search.qdrant.manifest import is_qdrant_folder
from lookalike.search.queries import Query, query_batch
from lookalike.search.reported import folder_distance
from lookalike.search.spec import IndexSpec
from lookalike.search.store import ITEM_IDS, MODEL_DIR, IndexStore, ItemRecord
from lookalike.search.vectors import (
    as_vectors,
    configure_search,
    for_distance,
    inner_index,
    remove_vectors,
    stored_ids,
    stored_vectors,
    vectors_of,
)

OpenIndex = TypeVar("OpenIndex", bound="Index")
DataSource = ImageCollection | str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


@dataclass(frozen=True)
class Hit:
    """One search result: the item's rank (1 = nearest), id, distance (in the index's
    distance, ``Index.distance``) and metadata."""

    rank: int
    id: int
    distance: float
    source: str
    label: str | None
    path: str | None
    added_at: str = field(default="", compare=False, repr=False)  # for the service, not JSON

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "id": self.id, "distance": self.distance,
                "source": self.source, "label": self.label, "path": self.path}


class Neighbors(NamedTuple):
    """Raw k-NN answer: (Q, k) ids (-1 where an approximate index found fewer) and distances
    in the index's distance."""

    ids: np.ndarray
    distances: np.ndarray


class Loaded(NamedTuple):
    """One generation of the folder as searched; replaced whole, so that a search running
    while another generation is loaded never mixes the two."""

    generation: int
    vectors: faiss.IndexIDMap2
    inner: faiss.Index  # the bare index under the id map, which searches go to
    ids: np.ndarray  # (N,) int64: the id of each stored vector, in storage order
    sorted_ids: np.ndarray  # (N,) the same, ascending (as SQLite orders them)

    def has(self, item_ids: Sequence[int]) -> np.ndarray:
        """(K,) bool: which of ``item_ids`` this generation holds (any integer may be asked)."""
        found = np.zeros(len(item_ids), dtype=bool)
        storable = [p for p, item_id in enumerate(item_ids) if item_id in ITEM_IDS]
        if storable and len(self.sorted_ids):
            wanted = np.array([item_ids[p] for p in storable], dtype=np.int64)
            at = np.minimum(np.searchsorted(self.sorted_ids, wanted), len(self.sorted_ids) - 1)
            found[storable] = self.sorted_ids[at] == wanted
        return found


def without_queries(query_ids: Sequence[int], neighbors: Neighbors, k: int) -> Neighbors:
    """The k nearest of each row of ``neighbors`` (k + 1 found) other than its query item
    (``more_like``: an item is not its own lookalike)."""
    ids, distances = [], []
    for query, row_ids, row_d in zip(query_ids, neighbors.ids, neighbors.distances,
                                     strict=True):
        keep = row_ids != query
        ids.append(row_ids[keep][:k])
        distances.append(row_d[keep][:k])
    return Neighbors(np.stack(ids), np.stack(distances))


AUTO_ONNX_ITEMS = 2048
"""Smallest collection ``Index.build(runtime="auto")`` considers ONNX Runtime for: below
it, exporting the model takes longer than embedding the items could save."""
ATTEMPTS = 5
"""Searches tried against generations that another process replaces meanwhile, before
giving up (each try loads the newest)."""


def open_data(data: DataSource, split: str | None = None, skip_bad: bool = False,
              max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageCollection:
    """What to index: a collection, a ``--data`` spec, a folder (class sub-folders or plain
    images), or a list of image files (unlabelled)."""
    if isinstance(data, ImageCollection):
        return data
    if isinstance(data, list | tuple):
        paths = [os.fspath(p) for p in data]
        if not paths:
            raise DataError("no images given")
        return _unlabelled(FileCollection(paths, np.zeros(len(paths), dtype=np.int64),
                                          [UNLABELLED], max_pixels=max_pixels), skip_bad)
    path = Path(_path_of(data))
    if split is None and has_loose_images(path):  # a folder of unlabelled photos
        return _unlabelled(scan_images(path, max_pixels=max_pixels), skip_bad, folder=path)
    return open_collection(_path_of(data), split, skip_bad=skip_bad, max_pixels=max_pixels)


def _path_of(data: DataSource) -> str:
    """A data source that is neither a collection nor a list: one path or ``--data`` spec."""
    return os.fspath(cast(str | os.PathLike[str], data))


def _unlabelled(collection: FileCollection, skip_bad: bool,
                folder: Path | None = None) -> FileCollection:
    """Drop unreadable files when asked. A folder may hold many (so the check shows
    progress) and must leave some; a list of files is what the user named."""
    if skip_bad:
        collection, _ = collection.validate(skip_bad=True, progress=folder is not None)
    if folder is not None and len(collection) == 0:
        raise DataError(f"{folder}: no usable images")
    return collection


class Index:
    """An opened index folder. Searching is thread-safe; changes take a lock."""

    def __init__(self, store: IndexStore, vectors: faiss.IndexIDMap2, *, device: str = "cpu",
                 backbone: nn.Module | None = None) -> None:
        self.store = store
        self.spec = IndexSpec.from_dict(store.meta["spec"])
        self.reported = folder_distance(store.meta, store.folder)
        self._use_vectors(vectors, int(store.meta["generation"]))
        self._start_embedding(device, backbone)

    def _start_embedding(self, device: str, backbone: nn.Module | None) -> None:
        """The query side, loaded on first use: the index's own model and its runtime."""
        self.device = device
        self._backbone = backbone
        self._model: Embedder | None = None
        self._embedder: Runtime | None = None
        self._model_lock = threading.Lock()
        self._write_lock = threading.RLock()  # changes, and loading another generation

    # -- building and opening ------------------------------------------------------------

    @classmethod
    def build(cls, checkpoint: str | os.PathLike[str], data: DataSource,
              out: str | os.PathLike[str], *, device: str = "cpu",
              backbone: nn.Module | None = None, **options: Any) -> Index:
        """Embed ``data`` with the checkpoint's model, write a new index folder ``out``
        (:meth:`write`, which takes the ``options``) and open it."""
        cls.write(checkpoint, data, out, device=device, backbone=backbone, **options)
        barrier()  # under torchrun, the main process has written it for everyone
        return cls.open(out, device=device, backbone=backbone)

    @classmethod
    def write(cls, checkpoint: str | os.PathLike[str], data: DataSource,
              out: str | os.PathLike[str], *, split: str | None = None,
              spec: IndexSpec | None = None, skip_bad: bool = False, batch_size: int = 256,
              device: str = "cpu", overwrite: bool = False, progress: bool = True,
              backbone: nn.Module | None = None, runtime: str = "torch",
              qdrant: str | os.PathLike[str] | None = None, collection: str | None = None,
              log: Callable[[str], None] = print) -> None:
        """Embed ``data`` with the checkpoint's model and write a new index folder ``out``:
        FAISS vectors in the folder, or with ``qdrant`` (a URL or a local-mode folder) a
        Qdrant collection ``collection`` (default: the folder's name) that the folder names.

        ``runtime`` embeds it: ``torch``, ``onnx`` or ``auto`` (from ``AUTO_ONNX_ITEMS``
        items on, the faster of the two at ``batch_size``, timed first); an ONNX export made
        on the way is kept in the folder (``model/model.onnx``) for the server. An
        interrupted build resumes when run again with the same model and data. Under
        torchrun every process calls it: each embeds its share, the main one writes
        (``build.py``), and ``auto`` means PyTorch, since timings could pick differently on
        different processes.
        """
        group = current_group()
        device = str(process_device(torch.device(device), group))
        model, info = load_checkpoint(checkpoint, backbone=backbone)
        items = open_data(data, split, skip_bad=skip_bad)
        name = None if isinstance(data, ImageCollection | list | tuple) else _path_of(data)
        if runtime == "auto" and (len(items) < AUTO_ONNX_ITEMS or group.distributed):
            runtime = "torch"  # an export (seconds) would cost more than it could save
        choice = choose_runtime(model, runtime, device=device, batches=(min(batch_size, 64),),
                                name=str(checkpoint), log=log)
        if runtime != "torch" and group.is_main:
            log(f"embedding with {choice.runtime.name}")
        embedder = None if isinstance(choice.runtime, TorchRuntime) else choice.runtime
        common: dict[str, Any] = {
            "model": model, "fingerprint": info.fingerprint, "checkpoint": Path(checkpoint),
            "collection": items, "data": name, "batch_size": batch_size, "device": device,
            "overwrite": overwrite, "progress": progress, "log": log, "runtime": embedder}
        if qdrant is not None:
            from lookalike.search.qdrant.build import write_qdrant_folder

            write_qdrant_folder(Path(out), location=qdrant, name=collection, **common)
        else:
            write_index_folder(Path(out), spec=spec or IndexSpec(), **common)
        if choice.exported is not None and group.is_main:
            write_bytes(Path(out) / MODEL_DIR / ONNX_FILE, choice.exported)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, device: str = "cpu",
             backbone: nn.Module | None = None,
             search_options: Mapping[str, int | None] | None = None) -> Index:
        """Open an index folder; ``search_options`` (e.g. ``{"ef_search": 128}``, any
        search-time option of a kind; None values are skipped) override the stored recall
        knobs for this session. Options of other kinds than the index's are ignored."""
        if is_qdrant_folder(path):
            from lookalike.search.qdrant.index import QdrantIndex

            return QdrantIndex.open(path, device=device, backbone=backbone)
        store = IndexStore.open(path)
        try:
            index = cls(store, store.read_vectors(), device=device, backbone=backbone)
        except BaseException:
            store.close()
            raise
        overrides = {k: v for k, v in (search_options or {}).items() if v is not None}
        if overrides:  # the stored knobs were applied on construction
            try:
                index.spec = index.spec.with_search_options(**overrides)
            except ConfigError:
                index.close()
                raise
            configure_search(index.vectors, index.spec)
        return index

    def close(self) -> None:
        self.store.close()

    def __enter__(self: OpenIndex) -> OpenIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what it holds ------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._loaded.vectors.ntotal)

    @property
    def vectors(self) -> faiss.IndexIDMap2:
        """The FAISS index (under its id map) of the loaded generation."""
        return self._loaded.vectors

    @property
    def generation(self) -> int:
        """The generation loaded: 0 when built, one more for each add or remove."""
        return self._loaded.generation

    def refresh(self) -> bool:
        """Load the generation committed since this one was loaded, by another handle or
        process (``lookalike index add`` while a server runs), if there is one.

        One small SQLite read when nothing changed. Returns whether it loaded one.
        """
        if self.store.generation() == self._loaded.generation:
            return False
        with self._write_lock:
            if self.store.generation() == self._loaded.generation:
                return False  # another thread loaded it meanwhile
            vectors = self.store.read_vectors()  # with the meta of its generation
            self._use_vectors(vectors, int(self.store.meta["generation"]))
        return True

    @property
    def path(self) -> Path:
        return self.store.folder

    @property
    def model_dir(self) -> Path:
        """The folder holding the copy of the model that embedded the items."""
        return self.store.model_dir

    @property
    def fingerprint(self) -> str:
        return str(self.store.meta["fingerprint"])

    @property
    def dim(self) -> int:
        """The dimension of the vectors (the model's embedding size)."""
        return int(self.store.meta["dim"])

    @property
    def distance(self) -> str:
        """The distance searched by and reported: the name of the model's distance."""
        return self.reported.distance.name

    @property
    def metric(self) -> str:
        """The FAISS metric the vectors are searched by ("L2", "INNER_PRODUCT"...)."""
        return self.reported.faiss_metric

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def model(self) -> Embedder:
        """The index's own model (loaded on first use), which embeds every query."""
        if self._model is not None:
            return self._model
        with self._model_lock:
            if self._model is None:
                model, info = load_checkpoint(self.model_dir, backbone=self._backbone,
                                              device=self.device)
                if info.fingerprint != self.fingerprint:
                    raise SearchIndexError(
                        f"{self.model_dir} holds model {info.fingerprint}, but the "
                        f"index's vectors come from model {self.fingerprint}: damaged folder")
                self._model = model.eval()
            return self._model

    @property
    def embedder(self) -> Runtime:
        """What embeds queries: the model in PyTorch, unless ``use_embedder`` chose another
        runtime (ONNX Runtime: ``lookalike.export.choose_runtime``)."""
        if self._embedder is None:
            model = self.model
            with self._model_lock:
                if self._embedder is None:
                    self._embedder = TorchRuntime(model, self.device)
        return self._embedder

    def use_embedder(self, embedder: Runtime) -> None:
        """Embed queries with ``embedder`` from now on (one of the index's model)."""
        self._embedder = embedder

    @property
    def onnx_path(self) -> Path:
        """Where the index's model, exported to ONNX, is kept (if it was exported)."""
        return self.model_dir / ONNX_FILE

    def info(self) -> dict[str, Any]:
        """A summary for ``lookalike index info``."""
        meta = self.store.meta
        return {"path": str(self.path), "items": len(self), "kind": self.kind,
                "distance": self.distance, "metric": self.metric, "dim": meta["dim"],
                "fingerprint": self.fingerprint,
                "spec": self.spec.to_dict(), "labels": self.labels(),
                "data": meta.get("data"), "checkpoint": meta.get("checkpoint"),
                "created_at": meta.get("created_at"),
                "lookalike_version": meta.get("lookalike_version")}

    def labels(self) -> dict[str | None, int]:
        """How many items each label has (None: unlabelled)."""
        return self.store.labels()

    def records(self, ids: Sequence[int]) -> dict[int, ItemRecord]:
        return self.store.records(ids)

    def image(self, item_id: int, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
        """Item ``item_id``'s image, from the index's own record (stored PNG or file path)."""
        record = self.records([item_id]).get(int(item_id))
        if record is None:
            raise SearchIndexError(f"no such item: {item_id} (no item has this id in "
                                   f"{self.path})")
        stored = self._stored_png(int(item_id))
        if stored is not None:
            return decode_image(io.BytesIO(stored), max_pixels=max_pixels, name=record.source)
        if record.path is None:
            raise SearchIndexError(f"item {item_id} ({record.source}) has no stored image")
        return decode_image(record.path, max_pixels=max_pixels)

    def _stored_png(self, item_id: int) -> bytes | None:
        """The PNG the folder keeps for an in-memory item (None for file items)."""
        return self.store.image_bytes(item_id)

    def sample_ids(self, n: int, seed: int | None = None) -> np.ndarray:
        """Up to ``n`` distinct random ids (seeded when ``seed`` is given), drawn from the
        ids in memory rather than read from SQLite on every call."""
        if n < 1:
            raise ConfigError(f"the number of random items must be >= 1, got {n}")
        if seed is not None and seed < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        return np.random.default_rng(seed).permutation(self._all_ids())[:n]

    def _all_ids(self) -> np.ndarray:
        """(N,) every id, ascending."""
        return self._loaded.sorted_ids

    # -- searching -----------------------------------------------------------------------

    def embed(self, queries: Query | Sequence[Query],
              max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """(Q, D) embeddings of query images, prepared as the collection was; image files
        above ``max_pixels`` are refused before they are decoded."""
        config = self.model.config
        images = query_batch(queries, config.input_size, config.in_channels,
                             max_pixels=max_pixels)
        return self.embedder(images)

    def search(self, queries: Query | Sequence[Query], k: int = 10,
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> list[list[Hit]]:
        """The k items nearest to each query image: one list of ``Hit`` per query."""
        self._check_k(k)  # before embedding: a bad k should not cost a model run
        return self.search_embeddings(self.embed(queries, max_pixels), k)

    def search_embeddings(self, vectors: Any, k: int = 10) -> list[list[Hit]]:
        """The k items nearest to each of (Q, D) embeddings, with their metadata: the
        neighbours and their rows come from one generation (the newest, if another process
        committed one meanwhile), so a search never misses an item or names a removed one."""
        queries = self._prepared(vectors)
        return self._answer(lambda loaded: self._search(loaded, queries, k))

    def _use_vectors(self, vectors: faiss.IndexIDMap2, generation: int) -> None:
        """Adopt a (new) FAISS index: searches go to the bare index under the id map, and
        positions become ids in numpy. FAISS's own id translation runs an OpenMP loop whose
        thread wake-ups cost milliseconds per query on a busy machine."""
        configure_search(vectors, self.spec)
        ids = stored_ids(vectors)
        self._loaded = Loaded(generation, vectors, inner_index(vectors), ids, np.sort(ids))

    def search_vectors(self, vectors: Any, k: int = 10) -> Neighbors:
        """Raw k-NN for (Q, D) embeddings: ids and distances (the index's), nearest first,
        in the loaded generation (``refresh`` loads a newer one)."""
        return self._search(self._loaded, self._prepared(vectors), k)

    def _search(self, loaded: Loaded, queries: np.ndarray, k: int) -> Neighbors:
        self._check_k(k, size=len(loaded.ids))
        scores, positions = loaded.inner.search(queries, k)
        found = positions >= 0  # an approximate index may find fewer than k
        ids = np.where(found, loaded.ids[np.where(found, positions, 0)], -1)
        return Neighbors(ids, self._distances(scores))

    def _answer(self, find: Callable[[Loaded], Neighbors]) -> list[list[Hit]]:
        """``find`` in the loaded generation, with the rows of that same generation: when
        another process committed a newer one meanwhile, load it and ``find`` again."""
        for _ in range(ATTEMPTS):
            loaded = self._loaded
            neighbors = find(loaded)
            records, generation = self.store.records_at(
                neighbors.ids[neighbors.ids >= 0].tolist())
            if generation == loaded.generation:
                return self._with_records(neighbors, records)
            self.refresh()
        raise SearchIndexError(f"{self.path} changed {ATTEMPTS} times during one search: "
                               "try again when its writers are done")

    def _prepared(self, vectors: Any) -> np.ndarray:
        """(N, D) float32 embeddings as the index stores them (unit-norm for cosine)."""
        return for_distance(as_vectors(vectors, int(self.store.meta["dim"])),
                            self.reported.distance)

    def _distances(self, scores: np.ndarray) -> np.ndarray:
        """FAISS scores -> distances in the index's distance, float32."""
        return self.reported.from_faiss(scores.astype(np.float32, copy=False))

    def more_like(self, item_ids: Sequence[int], k: int = 10) -> list[list[Hit]]:
        """The k items nearest to items already in the index, each item itself left out."""
        self._check_k(k, extra=1)
        wanted = [int(i) for i in item_ids]
        if not self._loaded.has(wanted).all():
            self.refresh()  # added by another process since this generation was loaded?

        def find(loaded: Loaded) -> Neighbors:
            held = loaded.has(wanted)
            if not held.all():
                missing = wanted[int(np.flatnonzero(~held)[0])]
                raise SearchIndexError(f"no such item: {missing} (no item has this id in "
                                       f"{self.path})")
            vectors = vectors_of(loaded.vectors, np.array(wanted, dtype=np.int64))
            self._check_k(k, extra=1, size=len(loaded.ids))
            return without_queries(wanted, self._search(loaded, vectors, k + 1), k)

        return self._answer(find)

    def hits(self, neighbors: Neighbors) -> list[list[Hit]]:
        """Attach each neighbour's metadata (one SQLite query for the whole batch)."""
        return self._with_records(
            neighbors, self.records(neighbors.ids[neighbors.ids >= 0].tolist()))

    @staticmethod
    def _with_records(neighbors: Neighbors,
                      records: Mapping[int, ItemRecord]) -> list[list[Hit]]:
        results = []
        for row_ids, row_d in zip(neighbors.ids, neighbors.distances, strict=True):
            row: list[Hit] = []
            for item_id, distance in zip(row_ids.tolist(), row_d.tolist(), strict=True):
                record = records.get(item_id)
                if record is not None:
                    row.append(Hit(len(row) + 1, item_id, float(distance), record.source,
                                   record.label, record.path, record.added_at))
            results.append(row)
        return results

    def _check_k(self, k: int, extra: int = 0, size: int | None = None) -> None:
        """k within 1 .. the ``size`` items (default: loaded) less ``extra`` left out."""
        size = len(self) if size is None else size
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        if k + extra > size:
            raise ConfigError(f"k={k} is more than the {size - extra} items the index can "
                              f"return ({size} items in {self.path})")

    # -- changing ------------------------------------------------------------------------

    def add(self, data: DataSource, *, split: str | None = None,
            checkpoint: str | os.PathLike[str] | None = None, skip_bad: bool = False,
            batch_size: int = 256, progress: bool = True,
            log: Callable[[str], None] = print) -> np.ndarray:
        """Embed ``data`` with the index's model and add it; returns the new ids.

        ``checkpoint`` is checked, not used: adding is refused if it is another model than
        the one that embedded the index.
        """
        if checkpoint is not None:
            _, info = load_checkpoint(checkpoint, backbone=self._backbone)
            self.check_fingerprint(info.fingerprint, str(checkpoint))
        collection = open_data(data, split, skip_bad=skip_bad)
        vectors = embed_collection(self.model, collection, batch_size=batch_size,
                                   device=self.device, progress=progress, log=log,
                                   model_name=self.model_dir)
        return self.add_vectors(vectors, collection, self.fingerprint)

    def add_vectors(self, vectors: Any, collection: ImageCollection,
                    fingerprint: str) -> np.ndarray:
        """Add precomputed embeddings of ``collection``'s items, made by model ``fingerprint``."""
        self.check_fingerprint(fingerprint, "these vectors")
        array = np.asarray(vectors.detach().cpu().numpy() if hasattr(vectors, "detach")
                           else vectors)
        if array.ndim == 2:  # else _prepared names the shape it needs
            check_vectors(array, collection)
        vectors = self._prepared(array)
        with self._write_lock:
            start = int(self.store.meta["next_id"])
            ids = np.arange(start, start + len(vectors), dtype=np.int64)
            grown = clone(self.vectors)
            grown.add_with_ids(vectors, ids)
            self.store.commit(grown, insert=list(new_items(collection, ids)),
                              meta={"next_id": start + len(vectors)})
            self._use_vectors(grown, int(self.store.meta["generation"]))
        return ids

    def remove(self, ids: Sequence[int]) -> int:
        """Remove items by id; unknown ids are an error (nothing is removed then)."""
        wanted = self._removable(ids)
        with self._write_lock:
            shrunk = remove_vectors(clone(self.vectors),
                                    np.array(wanted, dtype=np.int64), self.spec)
            self.store.commit(shrunk, delete=wanted)
            self._use_vectors(shrunk, int(self.store.meta["generation"]))
        return len(wanted)

    def _removable(self, ids: Sequence[int]) -> list[int]:
        """``ids`` sorted and unique, once all are known and some item would remain."""
        wanted = sorted({int(i) for i in ids})
        missing = sorted(set(wanted) - set(self.records(wanted)))
        if missing:
            raise SearchIndexError(f"no such item: {missing[0]} (no item has this id in "
                                   f"{self.path}); nothing was removed")
        if len(wanted) >= len(self):
            raise SearchIndexError(f"removing all {len(self)} items would leave an empty "
                                   "index: delete the folder instead")
        return wanted

    def check_fingerprint(self, fingerprint: str, what: str) -> None:
        if fingerprint != self.fingerprint:
            raise SearchIndexError(
                f"{what} come from model {fingerprint}, but {self.path} was built with model "
                f"{self.fingerprint}: vectors of different models are not comparable "
                "(build a new index for the new model)")

    # -- duplicates ----------------------------------------------------------------------

    def duplicates(self, threshold: float, neighbors: int = 10) -> list[list[int]]:
        """Groups of near-identical items: connected components of the graph linking each
        item to those of its ``neighbors`` nearest within distance ``threshold``, in the
        index's distance (``self.distance``: the model's, e.g. squared Euclidean).

        Largest groups first, ids ascending within a group.
        """
        check_duplicate_options(threshold, neighbors)
        loaded = self._loaded
        n = len(loaded.ids)
        k = min(n, neighbors + 1)
        self._check_k(k, size=n)
        scores, positions = loaded.inner.search(stored_vectors(loaded.vectors), k)
        found = positions >= 0
        neighbor_ids = np.where(found, loaded.ids[np.where(found, positions, 0)], -1)
        return duplicate_groups(loaded.ids, neighbor_ids, self._distances(scores), threshold)

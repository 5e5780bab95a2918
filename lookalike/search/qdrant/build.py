"""Writing a Qdrant index folder: from a collection of images (``index build --backend
qdrant``) or from an existing FAISS index folder (``index export --to qdrant``).

Both write the folder into ``<out>.partial`` (model copy, manifest, images of in-memory
items), fill the collection through ``upload.fill_collection`` (staged, verified, switched
in with an alias) and rename the folder into place last. A build embeds in resumable
chunks exactly as a FAISS build does (``search/build.py``); an interrupted build or export,
run again, continues its embedding chunks and its staged upload.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lookalike import __version__
from lookalike.data import ImageCollection
from lookalike.data.pipeline import collection_digest
from lookalike.distributed import broadcast_flag, current_group
from lookalike.errors import SearchIndexError
from lookalike.export import ONNX_FILE
from lookalike.export.runtime import Runtime
from lookalike.files import atomic_path
from lookalike.models import Embedder
from lookalike.search.build import (
    copy_checkpoint,
    embed_collection,
    move_into_place,
    new_items,
    remove_leftovers,
)
from lookalike.search.qdrant.connection import (
    connect,
    disconnect,
    qdrant_distance,
    resolve_location,
)
from lookalike.search.qdrant.manifest import FORMAT_VERSION, ImageStore, Manifest
from lookalike.search.qdrant.upload import check_target, fill_collection, payloads_of
from lookalike.search.store import MODEL_DIR, NewItem, disk_full_as, partial_folder, utc_now
from lookalike.search.vectors import for_distance, stored_ids, stored_vectors


def collection_name(out: Path, name: str | None) -> str:
    """``--collection``, else the index folder's name."""
    chosen = name if name is not None else out.name
    if not chosen or "/" in chosen or chosen.startswith("."):
        raise SearchIndexError(f"--collection {chosen!r}: give a plain name such as "
                               "'photos'")
    return chosen


def _refuse_existing(out: Path, overwrite: bool) -> None:
    if broadcast_flag(out.exists()) and not overwrite:
        raise SearchIndexError(f"{out} already exists: grow it with `lookalike index add`, "
                               "or pass --overwrite to replace it")


def write_qdrant_folder(out: Path, *, model: Embedder, fingerprint: str,
                        checkpoint: str | Path, collection: ImageCollection, data: str | None,
                        location: str | os.PathLike[str], name: str | None = None,
                        batch_size: int = 256, device: str | torch.device = "cpu",
                        overwrite: bool = False, progress: bool = True,
                        log: Callable[[str], None] = print,
                        runtime: Runtime | None = None) -> None:
    """Embed ``collection`` and write the Qdrant index folder ``out`` over collection
    ``name`` at ``location``. Everything that can be refused (the location, the distance,
    an existing collection) is checked before the first image is embedded."""
    group = current_group()
    _refuse_existing(out, overwrite)
    place = resolve_location(location)
    distance = qdrant_distance(model.config.distance)
    alias = collection_name(out, name)
    client = connect(place) if group.is_main else None
    try:
        key = _digest(fingerprint, collection_digest(collection))
        if client is not None:
            check_target(client, place, alias, key=key, fingerprint=fingerprint,
                         overwrite=overwrite)
        work = partial_folder(out)
        vectors = embed_collection(model, collection, work, batch_size=batch_size,
                                   device=device, progress=progress, log=log,
                                   fingerprint=fingerprint, model_name=checkpoint,
                                   runtime=runtime)
        if client is None:
            return
        ids = np.arange(len(vectors), dtype=np.int64)
        items = list(new_items(collection, ids))
        copy_checkpoint(checkpoint, work)
        manifest = Manifest(place, alias, fingerprint, int(vectors.shape[1]),
                            model.config.distance, data=data,
                            checkpoint=str(Path(checkpoint).resolve()), created_at=utc_now(),
                            lookalike_version=__version__)
        _write_folder(work, manifest, [(i.id, i.image) for i in items if i.image is not None])
        log(f"storing {len(vectors)} vectors of dimension {vectors.shape[1]} in Qdrant "
            f"collection {alias!r} at {place} ({distance.qdrant} distance)")
        fill_collection(client, place, alias, key=key,
                        vectors=for_distance(vectors, model.config.distance), ids=ids,
                        payloads=payloads_of(items, fingerprint), distance=distance,
                        meta=_collection_meta(manifest, len(vectors)), overwrite=overwrite,
                        progress=progress, log=log)
        _finish(work, out)
    finally:
        if client is not None:
            disconnect(place)


def export_to_qdrant(index_folder: str | os.PathLike[str], location: str | os.PathLike[str],
                     out: str | os.PathLike[str] | None = None, *, name: str | None = None,
                     overwrite: bool = False, progress: bool = True,
                     log: Callable[[str], None] = print) -> Path:
    """Copy a FAISS index folder's vectors, metadata, images and model into a Qdrant index
    folder (default ``<index>-qdrant``) over collection ``name``; returns the new folder.
    The source folder is only read."""
    from lookalike.search.index import Index
    from lookalike.search.qdrant.index import QdrantIndex

    source = Path(index_folder)
    target = Path(out) if out is not None else source.with_name(source.name + "-qdrant")
    if target.resolve() == source.resolve():
        raise SearchIndexError(f"--out {target} is the index being exported: choose a new "
                               "folder")
    with Index.open(source) as index:
        if isinstance(index, QdrantIndex):
            raise SearchIndexError(f"{source} is a Qdrant index already (collection "
                                   f"{index.collection!r} at {index.location})")
        _refuse_existing(target, overwrite)
        place = resolve_location(location)
        distance = qdrant_distance(index.distance)
        alias = collection_name(target, name)
        client = connect(place)
        try:
            key = _digest(index.fingerprint, str(index.generation), str(len(index)),
                          str(source.resolve()))
            check_target(client, place, alias, key=key, fingerprint=index.fingerprint,
                         overwrite=overwrite)
            ids = stored_ids(index.vectors)
            order = np.argsort(ids)
            ids, vectors = ids[order], stored_vectors(index.vectors)[order]
            found = index.records(ids.tolist())
            records = [found[int(i)] for i in ids.tolist()]  # in the order of ``ids``
            work = partial_folder(target)
            copy_checkpoint(index.model_dir, work)
            if index.onnx_path.is_file():
                with atomic_path(work / MODEL_DIR / ONNX_FILE) as tmp:
                    shutil.copyfile(index.onnx_path, tmp)
            meta = index.store.meta
            manifest = Manifest(place, alias, index.fingerprint, int(meta["dim"]),
                                index.distance, data=meta.get("data"),
                                checkpoint=meta.get("checkpoint"),
                                created_at=str(meta.get("created_at", "")),
                                lookalike_version=__version__)
            images = ((int(i), index.store.image_bytes(int(i))) for i in ids.tolist())
            _write_folder(work, manifest, [(i, png) for i, png in images if png is not None])
            payloads = payloads_of([NewItem(r.id, r.source, r.path, r.label) for r in records],
                                   index.fingerprint)
            for payload, record in zip(payloads, records, strict=True):
                payload["added_at"] = record.added_at  # when it entered the index
            log(f"exporting {len(ids)} items of {source} to Qdrant collection {alias!r} at "
                f"{place}")
            fill_collection(client, place, alias, key=key, vectors=vectors, ids=ids,
                            payloads=payloads, distance=distance,
                            meta=_collection_meta(manifest, int(meta["next_id"])),
                            overwrite=overwrite, progress=progress, log=log)
            _finish(work, target)
        finally:
            disconnect(place)
    return target


def _write_folder(work: Path, manifest: Manifest, images: list[tuple[int, bytes]]) -> None:
    """The manifest and the in-memory items' images, into the ``.partial`` folder."""
    with disk_full_as(work):
        work.mkdir(parents=True, exist_ok=True)
    store = ImageStore(work)
    try:
        store.put(images)
    finally:
        store.close()
    manifest.write(work)


def _collection_meta(manifest: Manifest, next_id: int) -> dict[str, Any]:
    """What the collection itself records, for every folder that opens it."""
    return {"lookalike_format": FORMAT_VERSION, "fingerprint": manifest.fingerprint,
            "dim": manifest.dim, "distance": manifest.distance, "next_id": next_id,
            "generation": 0}


def _digest(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _finish(work: Path, out: Path) -> None:
    """Drop the build's chunks and move the folder into place."""
    shutil.rmtree(work / "embeddings", ignore_errors=True)
    (work / "build.json").unlink(missing_ok=True)
    remove_leftovers(work)
    move_into_place(work, out)

"""Building an index folder: embed a collection in resumable chunks, then write it whole.

Everything is written into ``<out>.partial/`` next to the target. Embeddings are saved
chunk by chunk (``embeddings/00012.npy``, each written atomically), with ``build.json``
naming the model fingerprint and a digest of the items; running the same build again after
an interruption reuses the chunks already there, and a build of other data or by another
model starts clean. Only when the vectors, metadata and model copy are all written is the
folder renamed to ``<out>``: an index folder that opens is always complete.

Under ``torchrun`` every process embeds its share of each chunk (whole batches, dealt
round-robin: ``models/sharded_embed.py``), so the vectors are bit-identical to one process's;
only the main process reads and writes the folder, and tells the others which chunks it
already holds.

Every chunk is checked before it is saved: a model that gives NaN or infinite embeddings
(weights of a run that diverged) stops the build with nothing of it written. A full disk,
at any write, is one ``DiskFullError`` naming the file; the chunks saved before it stay, so
the same command continues from there once there is room.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lookalike import __version__
from lookalike.data import UNLABELLED, FileCollection, ImageCollection
from lookalike.data.dataset import ImageDataset
from lookalike.data.pipeline import collection_digest
from lookalike.distributed import ProcessGroup, broadcast_flag, current_group
from lookalike.errors import CheckpointError, DataError, SearchIndexError
from lookalike.export.runtime import Runtime, RuntimeModule
from lookalike.files import atomic_path, fsync_dir, write_json
from lookalike.models import Embedder
from lookalike.models.filepair import pair_paths
from lookalike.models.sharded_embed import Shard, embed_everywhere
from lookalike.search.spec import IndexSpec
from lookalike.search.store import (
    MODEL_DIR,
    IndexStore,
    NewItem,
    disk_full_as,
    partial_folder,
    utc_now,
)
from lookalike.search.vectors import build_vector_index

CHUNK_ITEMS = 4096
"""Items embedded between two saved chunks: the most work an interruption can lose."""


def new_items(collection: ImageCollection, ids: np.ndarray) -> Iterator[NewItem]:
    """Rows for the collection's items: files by absolute path, in-memory images as PNG."""
    files = isinstance(collection, FileCollection)
    for position, item_id in enumerate(ids.tolist()):
        name = collection.class_names[int(collection.labels[position])]
        label = None if name == UNLABELLED else name
        if files:
            path = str(Path(collection.source(position)).resolve())
            yield NewItem(item_id, collection.source(position), path, label)
        else:
            yield NewItem(item_id, collection.source(position), None, label,
                          png_bytes(collection, position))


def png_bytes(collection: ImageCollection, position: int) -> bytes:
    buffer = io.BytesIO()
    collection.load(position).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def non_finite_rows(vectors: np.ndarray) -> np.ndarray:
    """(N,) bool: the rows of (N, D) ``vectors`` holding a NaN or an infinity."""
    return np.asarray(~np.isfinite(vectors).all(axis=1))


def check_embeddings(part: np.ndarray, collection: ImageCollection, model: str,
                     start: int = 0) -> None:
    """Refuse embeddings that are not all finite, naming ``model``, how many items and the
    first of them; ``part`` holds items ``start ..`` of ``collection``."""
    bad = non_finite_rows(part)
    if not bad.any():
        return
    n, stop = len(collection), start + len(part)
    which = f"{n} items" if (start, stop) == (0, n) else f"items {start}..{stop - 1} of {n}"
    first = collection.source(start + int(np.flatnonzero(bad)[0]))
    raise CheckpointError(f"{model} gives NaN or infinite embeddings for {int(bad.sum())} of "
                          f"{which} (the first: {first}): are its weights finite? Nothing "
                          "was written")


def embed_collection(model: Embedder, collection: ImageCollection, work: Path | None = None,
                     *, batch_size: int = 256, device: str | torch.device = "cpu",
                     progress: bool = True, log: Callable[[str], None] = print,
                     fingerprint: str = "",
                     model_name: str | os.PathLike[str] = "the model",
                     runtime: Runtime | None = None) -> np.ndarray:
    """(N, D) float32 embeddings of ``collection`` as the index will store them, by
    ``model`` or, when given, ``runtime`` (the same model in ONNX Runtime, say). Under
    torchrun every process must call it; the main one gets the vectors, the others (0, D).

    With ``work``, chunks are saved there and reused by a rerun with the same model and items.
    Every chunk is checked first: non-finite embeddings raise ``CheckpointError`` naming
    ``model_name`` (the checkpoint) and are never saved.
    """
    config = model.config
    group = current_group()
    writes = work if group.is_main else None  # the other processes only embed
    dataset = ImageDataset(collection, size=config.input_size, channels=config.in_channels)
    n = len(collection)
    chunks = range(0, n, CHUNK_ITEMS)
    if writes is not None:
        _prepare_work(writes, {"fingerprint": fingerprint,
                               "items": collection_digest(collection), "count": n,
                               "chunk_items": CHUNK_ITEMS, "dim": config.embedding_dim}, log)
    runner = model if runtime is None else RuntimeModule(runtime, config.embedding_dim)
    parts: list[np.ndarray] = []
    with tqdm(total=n, unit="img", desc="embed", disable=not (progress and group.is_main)) \
            as bar:

        def advance(count: int) -> None:
            bar.update(count)

        for start in chunks:
            stop = min(start + CHUNK_ITEMS, n)
            saved = _saved_chunk(writes, start, (stop - start, config.embedding_dim))
            if _everyone_skips(saved is not None, group, work):
                if saved is not None:
                    parts.append(saved)
                bar.update(stop - start)
                continue
            part = embed_everywhere(runner, Shard(dataset, start, stop),
                                    batch_size=batch_size, device=device, progress=False,
                                    on_batch=advance)
            try:
                check_embeddings(part, collection, os.fspath(model_name), start)
            except CheckpointError:
                if writes is not None and not any((writes / "embeddings").glob("*.npy")):
                    shutil.rmtree(writes)  # this build wrote nothing worth keeping
                raise
            if writes is not None:
                with atomic_path(writes / "embeddings" / f"{start:010d}.npy") as tmp, \
                        open(tmp, "wb") as handle:
                    np.save(handle, part)
            if group.is_main:
                parts.append(part)
    if not parts:
        return np.zeros((0, config.embedding_dim), dtype=np.float32)
    return np.concatenate(parts)


def _saved_chunk(work: Path | None, start: int, shape: tuple[int, int]) -> np.ndarray | None:
    """The chunk from ``start`` that an interrupted build saved in ``work``, if whole."""
    saved = None if work is None else work / "embeddings" / f"{start:010d}.npy"
    if saved is None or not saved.is_file():
        return None
    part = np.load(saved)
    return part if part.shape == shape and not non_finite_rows(part).any() else None


def _everyone_skips(main_has_it: bool, group: ProcessGroup, work: Path | None) -> bool:
    """Whether the main process holds this chunk already (the other processes ask it): a
    build resumed under torchrun skips the same chunks on every rank."""
    if work is None:  # nothing is saved, so nothing is skipped
        return False
    return broadcast_flag(main_has_it) if group.distributed else main_has_it


def check_vectors(vectors: np.ndarray, collection: ImageCollection) -> None:
    """Precomputed (N, D) embeddings of ``collection``: all finite, one per item."""
    if len(vectors) != len(collection):
        raise DataError(f"{len(vectors)} vectors for {len(collection)} items")
    bad = non_finite_rows(vectors)
    if bad.any():
        first = collection.source(int(np.flatnonzero(bad)[0]))
        raise DataError(f"{int(bad.sum())} of the {len(vectors)} vectors hold NaN or infinite "
                        f"values (the first: {first}); nothing was written")


def _prepare_work(work: Path, key: dict[str, Any], log: Callable[[str], None]) -> None:
    """Keep the saved chunks of the same build; clear those of another one."""
    stamp = work / "build.json"
    if stamp.is_file():
        try:
            previous = json.loads(stamp.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        done = len(list((work / "embeddings").glob("*.npy")))
        if previous == key:
            remove_leftovers(work)
            if done:
                log(f"resuming the unfinished build in {work} ({done} chunks of "
                    f"{CHUNK_ITEMS} items already embedded)")
            return
        log(f"{work} holds an unfinished build of other items or another model: starting clean")
    if work.exists():
        shutil.rmtree(work)
    with disk_full_as(work):
        (work / "embeddings").mkdir(parents=True)
    write_json(stamp, key)


def remove_leftovers(folder: Path) -> None:
    """Delete the temporary files of writes that a kill cut short (``atomic_path``'s)."""
    for path in folder.rglob(".*.tmp"):
        path.unlink(missing_ok=True)


def copy_checkpoint(checkpoint: str | Path, folder: Path) -> None:
    """Copy the checkpoint's weight and JSON files into ``folder/model/``."""
    tensors, document = pair_paths(checkpoint, "model")
    target = folder / MODEL_DIR
    with disk_full_as(target):
        target.mkdir(parents=True, exist_ok=True)
    for source, name in ((tensors, "model.safetensors"), (document, "model.json")):
        with atomic_path(target / name) as tmp:
            shutil.copyfile(source, tmp)


def write_index_folder(out: Path, *, model: Embedder, fingerprint: str, checkpoint: str | Path,
                       collection: ImageCollection, spec: IndexSpec, data: str | None,
                       batch_size: int = 256, device: str | torch.device = "cpu",
                       overwrite: bool = False, progress: bool = True,
                       log: Callable[[str], None] = print,
                       runtime: Runtime | None = None) -> None:
    """Embed ``collection`` with ``model`` (run by ``runtime`` if given) and write the
    index folder ``out`` (under torchrun: every process embeds, the main one writes)."""
    group = current_group()
    if broadcast_flag(out.exists()) and not overwrite:  # the main process's view, everywhere
        raise SearchIndexError(f"{out} already exists: grow it with `lookalike index add`, "
                               "or pass --overwrite to replace it")
    work = partial_folder(out)
    vectors = embed_collection(model, collection, work, batch_size=batch_size, device=device,
                               progress=progress, log=log, fingerprint=fingerprint,
                               model_name=checkpoint, runtime=runtime)
    if not group.is_main:
        return
    resolved = spec.resolved(len(vectors))
    distance = model.config.distance  # the index searches and reports what the model learnt
    log(f"building a {resolved.kind} index ({distance} distance) over {len(vectors)} vectors "
        f"of dimension {vectors.shape[1]}")
    ids = np.arange(len(vectors), dtype=np.int64)
    index = build_vector_index(vectors, ids, resolved, distance)
    copy_checkpoint(checkpoint, work)
    meta = {"fingerprint": fingerprint, "dim": int(vectors.shape[1]), "distance": distance,
            "spec": resolved.to_dict(), "next_id": len(vectors), "data": data,
            "checkpoint": str(Path(checkpoint).resolve()), "created_at": utc_now(),
            "lookalike_version": __version__}
    items: Iterable[NewItem] = new_items(collection, ids)
    if progress:
        items = tqdm(items, total=len(ids), unit="item", desc="metadata", leave=False)
    IndexStore.create(work, meta, index, items).close()
    shutil.rmtree(work / "embeddings")
    (work / "build.json").unlink()
    remove_leftovers(work)
    move_into_place(work, out)


def move_into_place(work: Path, out: Path) -> None:
    """Rename the finished folder to ``out``, replacing an old index only now."""
    old = out.with_name(out.name + ".old")
    if old.exists():  # left by a build killed between its two renames
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
        work.rename(out)
        shutil.rmtree(old)
    else:
        work.rename(out)
    fsync_dir(out.parent)

"""Filling a Qdrant collection so that users only ever see a whole one.

A build or an export writes into a staging collection (``<name>-building-<key>``, the key
naming the model and the items), in batches of ids in order, then checks the count and a
sample of vectors, and only then points the alias ``<name>`` at it, in one alias request
(Qdrant applies its operations together), and deletes the collection the alias named
before. Searches through the alias see the old collection until that moment, the new one
after. An interrupted fill leaves the staging collection: running the same command again
finds it by its key and continues from the last whole batch (upserts of the same ids and
vectors are idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from lookalike.errors import SearchIndexError
from lookalike.search.qdrant.connection import QdrantDistance, qdrant_errors
from lookalike.search.qdrant.manifest import payload_of
from lookalike.search.store import NewItem, utc_now

if TYPE_CHECKING:
    from qdrant_client import QdrantClient
    from qdrant_client.models import CollectionInfo

UPLOAD_BATCH = 256
"""Points per upsert request: the most a kill can make a resumed fill send again."""
VERIFIED_SAMPLE = 64
"""Vectors read back and compared after a fill, besides the count."""
VERIFY_ATOL = 1e-5


def staging_name(name: str, key: str) -> str:
    return f"{name}-building-{key[:16]}"


def current_collection(client: QdrantClient, location: str, name: str) -> str | None:
    """The collection the alias ``name`` points at (None if there is no such alias); a
    plain collection called ``name`` is refused, since no alias can take its name."""
    with qdrant_errors(location, f"read the aliases of {name!r}"):
        aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
        if name in aliases:
            return aliases[name]
        plain = client.collection_exists(name)
    if plain:
        raise SearchIndexError(f"Qdrant at {location}: {name!r} is a collection that "
                               "lookalike did not make (it makes aliases over staged "
                               "collections): choose another --collection; nothing changed")
    return None


def collection_info(client: QdrantClient, location: str, name: str) -> CollectionInfo:
    """What Qdrant says of a collection (its configuration, metadata and point count)."""
    with qdrant_errors(location, f"read collection {name!r}"):
        return client.get_collection(name)


def metadata_of(info: CollectionInfo) -> dict[str, Any]:
    """The metadata lookalike keeps on a collection (fingerprint, dim, distance, next_id)."""
    meta = info.config.metadata or {}
    return dict(meta) if isinstance(meta, dict) else {}


def collection_meta(client: QdrantClient, location: str, name: str) -> dict[str, Any]:
    return metadata_of(collection_info(client, location, name))


def check_target(client: QdrantClient, location: str, name: str, *, key: str,
                 fingerprint: str, overwrite: bool) -> str | None:
    """The collection alias ``name`` names now (None: none), refused unless ``overwrite``
    or it is this fill's own staging collection (switched in by a run killed just after)."""
    old = current_collection(client, location, name)
    if old is None or old == staging_name(name, key) or overwrite:
        return old
    model = collection_meta(client, location, old).get("fingerprint", "?")
    what = ("the same model" if model == fingerprint
            else f"another model ({model}; these vectors are {fingerprint})")
    raise SearchIndexError(f"Qdrant at {location}: collection {name!r} exists already, of "
                           f"{what}: pass --overwrite to replace it, or choose another "
                           "--collection; nothing changed")


def fill_collection(client: QdrantClient, location: str, name: str, *, key: str,
                    vectors: np.ndarray, ids: np.ndarray, payloads: Sequence[dict[str, Any]],
                    distance: QdrantDistance, meta: dict[str, Any], overwrite: bool,
                    progress: bool = True, log: Callable[[str], None] = print) -> None:
    """Make alias ``name`` point at a new collection of ``vectors`` (N, D) under ``ids``
    with ``payloads``; ``meta`` is stored on the collection. Resumes a staging collection
    of the same ``key``. An alias ``name`` of another collection is replaced only with
    ``overwrite``; otherwise, and for any bad input, nothing is changed."""
    from qdrant_client import models

    old = check_target(client, location, name, key=key, fingerprint=meta["fingerprint"],
                       overwrite=overwrite)
    staging = staging_name(name, key)
    if old == staging:  # a run killed after the switch, before its folder was in place
        verify(client, location, staging, vectors, ids, unit=distance.qdrant == "Cosine")
        return
    with qdrant_errors(location, f"create collection {staging!r}"):
        if client.collection_exists(staging):
            done = int(client.count(staging, exact=True).count)
            start = done - done % UPLOAD_BATCH
            if done:
                log(f"resuming the unfinished upload into {staging!r} ({done} of "
                    f"{len(ids)} points there)")
        else:
            start = 0
            client.create_collection(
                staging, vectors_config=models.VectorParams(
                    size=int(vectors.shape[1]), distance=models.Distance(distance.qdrant)),
                metadata=meta)
            # a server counts labels (``QdrantIndex.labels``, a facet) only over an index
            client.create_payload_index(staging, field_name="label",
                                        field_schema=models.PayloadSchemaType.KEYWORD)
    with tqdm(total=len(ids), initial=start, unit="item", desc="upload",
              disable=not progress) as bar:
        upsert_points(client, location, staging, vectors[start:], ids[start:],
                      payloads[start:], on_batch=bar.update)
    verify(client, location, staging, vectors, ids, unit=distance.qdrant == "Cosine")
    operations: list[Any] = []
    if old is not None:
        operations.append(models.DeleteAliasOperation(
            delete_alias=models.DeleteAlias(alias_name=name)))
    operations.append(models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name=staging, alias_name=name)))
    with qdrant_errors(location, f"point alias {name!r} at {staging!r}"):
        client.update_collection_aliases(change_aliases_operations=operations)
        if old is not None:
            client.delete_collection(old)


def verify(client: QdrantClient, location: str, collection: str, vectors: np.ndarray,
           ids: np.ndarray, *, unit: bool) -> None:
    """The collection holds ``len(ids)`` points, and a seeded sample of them holds the
    vectors sent (unit-normalised for a cosine collection), within ``VERIFY_ATOL``."""
    with qdrant_errors(location, f"check collection {collection!r}"):
        count = int(client.count(collection, exact=True).count)
        if count != len(ids):
            raise SearchIndexError(f"Qdrant at {location}: collection {collection!r} holds "
                                   f"{count} points after the upload of {len(ids)}: run the "
                                   "command again to resume it")
        sample = np.random.default_rng(0).permutation(len(ids))[:VERIFIED_SAMPLE]
        points = client.retrieve(collection, ids=ids[sample].tolist(), with_vectors=True,
                                 with_payload=False)
    stored = {int(p.id): np.asarray(p.vector, dtype=np.float32) for p in points}
    for position in sample.tolist():
        expected = vectors[position]
        if unit:
            expected = expected / max(float(np.linalg.norm(expected)), 1e-12)
        got = stored.get(int(ids[position]))
        if got is None or not np.allclose(got, expected, atol=VERIFY_ATOL, rtol=0):
            raise SearchIndexError(f"Qdrant at {location}: item {int(ids[position])} of "
                                   f"collection {collection!r} does not hold the vector "
                                   "sent: the upload is not trustworthy; nothing was switched")


def payloads_of(items: Sequence[NewItem], fingerprint: str) -> list[dict[str, Any]]:
    """Point payloads of new items, added now (their PNG bytes stay in the folder's image
    store)."""
    added = utc_now()
    return [payload_of({"id": item.id, "source": item.source, "path": item.path,
                        "label": item.label, "added_at": added, "fingerprint": fingerprint})
            for item in items]


def upsert_points(client: QdrantClient, location: str, collection: str, vectors: np.ndarray,
                  ids: np.ndarray, payloads: Sequence[dict[str, Any]],
                  on_batch: Callable[[int], object] | None = None) -> None:
    """Send points in batches of ``UPLOAD_BATCH``, each acknowledged before the next."""
    from qdrant_client import models

    for first in range(0, len(ids), UPLOAD_BATCH):
        last = min(first + UPLOAD_BATCH, len(ids))
        with qdrant_errors(location, f"upload to {collection!r}"):
            client.upsert(collection, wait=True, points=models.Batch(
                ids=ids[first:last].tolist(), vectors=vectors[first:last].tolist(),
                payloads=list(payloads[first:last])))
        if on_batch is not None:
            on_batch(last - first)

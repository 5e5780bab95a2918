"""lookalike.search: build, query, grow, shrink and reopen index folders on tiny data.

The embedder is an untrained SmallCNN: its embeddings carry no meaning, but every property
tested here (an item finds itself, ids survive changes, builds resume, folders stay
consistent) holds for any model.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from PIL import Image

from lookalike.data import ArrayCollection, decode_image
from lookalike.distances import METRICS
from lookalike.errors import ConfigError, LookalikeError, SearchIndexError
from lookalike.models import embed, load_checkpoint
from lookalike.search import Index, IndexSpec
from lookalike.search import build as build_module
from lookalike.search import store as store_module
from lookalike.search.vectors import (
    build_vector_index,
    for_distance,
    remove_vectors,
    stored_ids,
    stored_vectors,
)
from lookalike.viz.grids import QUERY, RIGHT, WRONG
from lookalike.viz.search import plot_search_grid

from .conftest import images_of, write_class_folder

QUIET: dict[str, Any] = {"progress": False, "log": lambda message: None}
KINDS = ("flat", "hnsw", "ivf")


def build(checkpoint: Path, data: Any, out: Path, **options: Any) -> Index:
    return Index.build(checkpoint, data, out, **QUIET, **options)


def ids_by_path(index: Index) -> dict[str | None, int]:
    """Every indexed file's id, by its absolute path."""
    records = index.records(index.store.all_ids().tolist()).values()
    found = {r.path: r.id for r in records}
    assert len(found) == len(index), "a file is indexed twice"
    return found


def id_of(index: Index, path: str | Path) -> int:
    """The id of the item indexed from ``path``."""
    return ids_by_path(index)[str(Path(path).resolve())]


def folder_state(folder: Path) -> dict[str, int]:
    """Every file under an index folder with its size: what a refused change must not touch."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")
            if p.is_file()}


def vector_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("vectors-*.faiss"))


def by_id(index: Index) -> dict[int, np.ndarray]:
    return dict(zip(stored_ids(index.vectors).tolist(), stored_vectors(index.vectors),
                    strict=True))


class CountingEmbed:
    """Stands in for ``embed_everywhere`` in the build (one process): counts the items
    embedded, can fail a call."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.fail_on_call = fail_on_call
        self.calls = 0
        self.items = 0

    def __call__(self, model: Any, dataset: Any, **options: Any) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt  # Ctrl-C in the middle of a build
        self.items += len(dataset)
        return embed(model, dataset, **options)


@pytest.fixture(scope="module")
def labelled(checkpoint: Path, tiny_folder: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Index:
    """A flat index over tiny_folder (3 classes x 16): read-only, shared by the module."""
    return build(checkpoint, tiny_folder, tmp_path_factory.mktemp("labelled") / "index",
                 spec=IndexSpec(kind="flat"))


@pytest.fixture(scope="module")
def many_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 images (4 classes x 30): enough for IVF to train 3 cells."""
    return write_class_folder(tmp_path_factory.mktemp("many") / "images", classes=4,
                              per_class=30, seed=3)


@pytest.fixture(scope="module")
def built_kinds(checkpoint: Path, many_folder: Path,
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One index folder per kind over many_folder; tests copy them before changing them."""
    root = tmp_path_factory.mktemp("kinds")
    for kind in KINDS:
        build(checkpoint, many_folder, root / kind, spec=IndexSpec(kind=kind)).close()
    return {kind: root / kind for kind in KINDS}


@pytest.fixture
def new_images(tmp_path: Path) -> Path:
    """3 images that are not in any index (one per class folder)."""
    return write_class_folder(tmp_path / "new", classes=3, per_class=1, seed=11)


def copy_index(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(source, target)
    return target


# -- building --------------------------------------------------------------------------------


def test_build_from_class_folder_labels_items_by_folder(labelled: Index, checkpoint: Path,
                                                        tiny_folder: Path) -> None:
    _, info_of_checkpoint = load_checkpoint(checkpoint)
    assert len(labelled) == 48
    info = labelled.info()
    assert info["items"] == 48 and info["kind"] == "flat" and info["dim"] == 16
    assert info["distance"] == "euclidean"  # the model's distance, searched by FAISS's L2
    assert info["metric"] == "L2"
    assert info["fingerprint"] == info_of_checkpoint.fingerprint
    assert info["labels"] == {"class_0": 16, "class_1": 16, "class_2": 16}
    records = labelled.records(labelled.store.all_ids().tolist())
    assert sorted(records) == list(range(48))
    assert sorted(r.path for r in records.values()) == images_of(tiny_folder)
    for record in records.values():
        assert record.label == Path(record.path).parent.name


def test_build_from_flat_folder_is_unlabelled(checkpoint: Path, tiny_folder: Path,
                                              tmp_path: Path) -> None:
    flat = tmp_path / "photos"
    flat.mkdir()
    for path in images_of(tiny_folder)[::6]:
        shutil.copy(path, flat / f"{Path(path).parent.name}_{Path(path).name}")
    index = build(checkpoint, flat, tmp_path / "index")
    assert len(index) == 8
    assert index.info()["labels"] == {None: 8}
    hits = index.search(images_of(flat)[:2], k=3)
    assert all(hit.label is None for row in hits for hit in row)


def test_build_from_a_list_of_files_keeps_their_order(checkpoint: Path, tiny_folder: Path,
                                                      tmp_path: Path) -> None:
    files = images_of(tiny_folder)[::-10]
    index = build(checkpoint, files, tmp_path / "index")
    assert len(index) == len(files) == 5
    records = index.records(range(5))
    assert [records[i].source for i in range(5)] == files
    assert all(records[i].label is None for i in range(5))
    assert index.info()["labels"] == {None: 5}


def test_build_from_an_in_memory_collection_stores_the_pixels(checkpoint: Path,
                                                              tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, size=(6, 28, 28, 3), dtype=np.uint8)
    collection = ArrayCollection(pixels, np.array([0, 0, 1, 1, 2, 2]), ["a", "b", "c"],
                                 name="arrays")
    index = build(checkpoint, collection, tmp_path / "index")
    assert index.info()["labels"] == {"a": 2, "b": 2, "c": 2}
    np.testing.assert_array_equal(np.asarray(index.image(3)), pixels[3])
    top = index.search([pixels[3]], k=1)[0][0]
    assert top.id == 3 and top.label == "b" and top.path is None and top.distance < 1e-3


# -- searching -------------------------------------------------------------------------------


def test_a_collection_image_finds_itself_first(labelled: Index, tiny_folder: Path) -> None:
    queries = images_of(tiny_folder)[::7]
    results = labelled.search(queries, k=6)
    assert len(results) == len(queries)
    for query, hits in zip(queries, results, strict=True):
        assert [hit.rank for hit in hits] == [1, 2, 3, 4, 5, 6]
        assert hits[0].id == id_of(labelled, query) and hits[0].path == query
        assert hits[0].distance < 1e-3
        distances = [hit.distance for hit in hits]
        assert distances == sorted(distances)
        assert len({hit.id for hit in hits}) == 6


def test_search_vectors_agrees_with_brute_force(labelled: Index, tiny_folder: Path) -> None:
    ids, vectors = stored_ids(labelled.vectors), stored_vectors(labelled.vectors)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    rng = np.random.default_rng(0)
    random_queries = rng.normal(size=(5, 16)).astype(np.float32)
    random_queries /= np.linalg.norm(random_queries, axis=1, keepdims=True)
    queries = np.concatenate([random_queries, labelled.embed(images_of(tiny_folder)[1::9])])
    k = 7
    found = labelled.search_vectors(queries, k)
    assert found.ids.shape == found.distances.shape == (len(queries), k)
    exact = np.linalg.norm(queries[:, None, :].astype(np.float64) - vectors[None], axis=2)
    for row in range(len(queries)):
        exact_of = dict(zip(ids.tolist(), exact[row], strict=True))
        # Each reported distance is the true Euclidean distance of the id it names (compared
        # squared: the square root of a float32 squared distance puts a self-match at ~3e-4,
        # not 0) ...
        reported = found.distances[row].astype(np.float64)
        np.testing.assert_allclose(reported ** 2,
                                   [exact_of[i] ** 2 for i in found.ids[row].tolist()],
                                   atol=1e-6)
        # ... and the k found are the k nearest (up to ties within float32 rounding).
        assert np.all(np.diff(reported) >= 0)
        np.testing.assert_allclose(reported ** 2, np.sort(exact[row])[:k] ** 2, atol=1e-6)


def test_reopening_gives_identical_results(labelled: Index, tiny_folder: Path) -> None:
    queries = images_of(tiny_folder)[2::11]
    before = labelled.search(queries, k=5)
    with Index.open(labelled.path) as reopened:
        assert len(reopened) == len(labelled) and reopened.info() == labelled.info()
        assert reopened.search(queries, k=5) == before


def test_every_query_form_gives_the_same_embedding(labelled: Index, tiny_folder: Path) -> None:
    path = images_of(tiny_folder)[20]
    image = decode_image(path)
    pixels = np.array(image)  # (28, 28, 3) uint8
    chw = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0
    forms = {
        "str": path, "Path": Path(path), "pillow": image, "array": pixels,
        "chw": chw, "chw uint8": torch.from_numpy(pixels).permute(2, 0, 1).contiguous(),
        "bchw": chw[None], "bytes": Path(path).read_bytes(),
    }
    reference = labelled.embed(path)
    assert reference.shape == (1, 16)
    for name, query in forms.items():
        np.testing.assert_allclose(labelled.embed(query), reference, atol=1e-5,
                                   err_msg=f"query given as {name}")
    own_id = id_of(labelled, path)
    for name, query in forms.items():
        top = labelled.search(query, k=1)
        assert len(top) == 1 and top[0][0].id == own_id, name
    listed = [query for name, query in forms.items() if name != "bchw"]  # a list of images
    several = labelled.search(listed, k=1)
    assert [row[0].id for row in several] == [own_id] * len(listed)


# -- more_like (search from items already in the index) ---------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_more_like_leaves_the_item_itself_out(kind: str, built_kinds: dict[str, Path]) -> None:
    with Index.open(built_kinds[kind]) as index:
        assert index.kind == kind
        results = index.more_like([0, 90], k=4)
        vectors = by_id(index)
        for item_id, hits in zip([0, 90], results, strict=True):
            assert [hit.rank for hit in hits] == [1, 2, 3, 4]
            assert item_id not in [hit.id for hit in hits]
            plain = index.search_vectors(vectors[item_id][None], 5)
            assert plain.ids[0, 0] == item_id
            assert [hit.id for hit in hits] == plain.ids[0, 1:].tolist()


def test_search_options_override_the_stored_knobs_for_a_session(
        built_kinds: dict[str, Path]) -> None:
    import faiss

    options = {"ef_search": 7, "nprobe": 2, "hnsw_m": None}  # None: not given
    with Index.open(built_kinds["hnsw"], search_options=options) as hnsw:
        assert hnsw.spec.get("ef_search") == 7 and "nprobe" not in hnsw.spec.options
        assert faiss.downcast_index(hnsw.vectors.index).hnsw.efSearch == 7
    with Index.open(built_kinds["ivf"], search_options=options) as ivf:
        assert faiss.downcast_index(ivf.vectors.index).nprobe == 2
    with Index.open(built_kinds["ivf"]) as stored:  # nothing was written
        assert stored.spec.get("nprobe") == 16
    with pytest.raises(ConfigError, match="hnsw_m is fixed when an index is built"):
        Index.open(built_kinds["hnsw"], search_options={"hnsw_m": 8})


# -- adding ----------------------------------------------------------------------------------


def test_add_continues_ids_after_the_largest_ever_given(labelled: Index, new_images: Path,
                                                        tmp_path: Path) -> None:
    out = copy_index(labelled.path, tmp_path)
    index = Index.open(out)
    index.remove([46, 47])  # the largest ids: they must not be given again
    ids = index.add(new_images, **QUIET)
    assert ids.tolist() == [48, 49, 50]
    assert len(index) == 49
    for path in images_of(new_images):
        top = index.search(path, k=1)[0][0]
        assert top.id in ids and top.path == path and top.distance < 1e-3
        assert top.label == Path(path).parent.name
    with Index.open(out) as reopened:
        assert len(reopened) == 49
        assert reopened.store.all_ids().tolist() == [*range(46), 48, 49, 50]
        assert reopened.search(images_of(new_images), k=1) == index.search(
            images_of(new_images), k=1)
        assert reopened.add(images_of(new_images)[:1], **QUIET).tolist() == [51]
    index.close()


def test_add_with_the_same_checkpoint_is_allowed(checkpoint: Path, labelled: Index,
                                                 new_images: Path, tmp_path: Path) -> None:
    with Index.open(copy_index(labelled.path, tmp_path)) as index:
        assert index.add(new_images, checkpoint=checkpoint, **QUIET).tolist() == [48, 49, 50]


def test_add_with_another_checkpoint_is_refused(other_checkpoint: Path, labelled: Index,
                                                new_images: Path, tmp_path: Path) -> None:
    _, other = load_checkpoint(other_checkpoint)
    folder = copy_index(labelled.path, tmp_path)
    before = folder_state(folder)
    with Index.open(folder) as index:
        with pytest.raises(SearchIndexError) as refused:
            index.add(new_images, checkpoint=other_checkpoint, **QUIET)
        message = str(refused.value)
        assert other.fingerprint in message and index.fingerprint in message
        assert "\n" not in message
        assert len(index) == 48
    assert folder_state(folder) == before
    with Index.open(folder) as reopened:
        assert len(reopened) == 48 and reopened.store.meta["generation"] == 0


def test_add_vectors_of_another_model_is_refused(labelled: Index, tiny_folder: Path,
                                                 tmp_path: Path) -> None:
    folder = copy_index(labelled.path, tmp_path)
    before = folder_state(folder)
    collection = ArrayCollection(np.zeros((1, 28, 28), dtype=np.uint8), np.zeros(1), ["x"])
    vectors = np.full((1, 16), 0.25, dtype=np.float32)
    with Index.open(folder) as index:
        with pytest.raises(SearchIndexError, match="0123456789abcdef"):
            index.add_vectors(vectors, collection, "0123456789abcdef")
        assert len(index) == 48
        ids = index.add_vectors(vectors, collection, index.fingerprint)  # the right model
        assert ids.tolist() == [48]
    assert folder_state(folder) != before


# -- removing --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_removed_items_vanish_and_stay_removed(kind: str, built_kinds: dict[str, Path],
                                               many_folder: Path, tmp_path: Path) -> None:
    folder = copy_index(built_kinds[kind], tmp_path)
    paths = images_of(many_folder)
    with Index.open(folder) as index:
        ids = ids_by_path(index)
        gone = [ids[p] for p in paths[::7]]
        assert index.remove(gone) == len(gone)
        assert len(index) == 120 - len(gone)
        results = index.search(paths[::7], k=10)  # the removed images themselves as queries
        assert not {hit.id for row in results for hit in row} & set(gone)
        assert all(len(row) == 10 for row in results)
        kept = [p for p in paths if p not in paths[::7]][::5]
        expected = index.search(kept, k=1)
        for path, row in zip(kept, expected, strict=True):
            assert row[0].id == ids[path] and row[0].distance < 1e-3
    with Index.open(folder) as reopened:
        assert len(reopened) == 120 - len(gone)
        assert not set(gone) & set(reopened.store.all_ids().tolist())
        assert not set(gone) & set(stored_ids(reopened.vectors).tolist())
        assert reopened.search(kept, k=1) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_removing_an_unknown_id_removes_nothing(kind: str, built_kinds: dict[str, Path],
                                                tmp_path: Path) -> None:
    folder = copy_index(built_kinds[kind], tmp_path)
    before = folder_state(folder)
    with Index.open(folder) as index:
        with pytest.raises(SearchIndexError, match=r"no such item: 999 .*nothing was removed"):
            index.remove([3, 999])
        with pytest.raises(SearchIndexError, match="empty index"):
            index.remove(index.store.all_ids().tolist())
        assert len(index) == 120 and 3 in stored_ids(index.vectors).tolist()
    assert folder_state(folder) == before


@pytest.mark.parametrize("distance", METRICS)
@pytest.mark.parametrize("kind", KINDS)
def test_vector_index_removal_keeps_ids_and_vectors_together(kind: str, distance: str) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(600, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(600, dtype=np.int64) * 3 + 7  # ids are not positions
    spec = IndexSpec(kind=kind, hnsw_m=16, nprobe=4)  # IVF: 15 cells, 4 searched
    index = build_vector_index(vectors, ids, spec, distance)
    removed = ids[::4]
    shrunk = remove_vectors(index, removed, spec)
    kept = ~np.isin(ids, removed)
    assert shrunk.ntotal == int(kept.sum())
    assert set(stored_ids(shrunk).tolist()) == set(ids[kept].tolist())
    # Every stored vector (as the distance stores it: unit-norm for cosine) still sits
    # under its own id ...
    original = dict(zip(ids.tolist(), for_distance(vectors, distance), strict=True))
    for item_id, vector in zip(stored_ids(shrunk).tolist(), stored_vectors(shrunk),
                               strict=True):
        np.testing.assert_array_equal(vector, original[item_id])
    # ... search never answers a removed id, and finds each remaining item by its vector.
    _, found = shrunk.search(vectors, 5)
    assert not np.isin(found, removed).any()
    np.testing.assert_array_equal(found[kept, 0], ids[kept])


# -- interrupted builds ----------------------------------------------------------------------


def test_an_interrupted_build_resumes_and_matches_an_uninterrupted_one(
        labelled: Index, checkpoint: Path, tiny_folder: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module, "CHUNK_ITEMS", 10)  # 48 items: 5 chunks
    out = tmp_path / "index"
    partial = tmp_path / "index.partial"
    first = CountingEmbed(fail_on_call=3)
    monkeypatch.setattr(build_module, "embed_everywhere", first)
    with pytest.raises(KeyboardInterrupt):
        build(checkpoint, tiny_folder, out)
    assert not out.exists() and partial.is_dir()
    assert len(list((partial / "embeddings").glob("*.npy"))) == 2
    with pytest.raises(SearchIndexError) as unfinished:
        Index.open(out)
    assert "unfinished build" in str(unfinished.value) and partial.name in str(unfinished.value)

    second = CountingEmbed()
    monkeypatch.setattr(build_module, "embed_everywhere", second)
    messages: list[str] = []
    resumed = Index.build(checkpoint, tiny_folder, out, progress=False, log=messages.append)
    assert second.items == 48 - 20  # the two saved chunks were not embedded again
    assert any("resuming" in m for m in messages)
    assert not partial.exists() and len(resumed) == 48

    # labelled: the same checkpoint and images, built without interruption
    resumed_vectors, reference = by_id(resumed), by_id(labelled)
    assert sorted(resumed_vectors) == sorted(reference) == list(range(48))
    for item_id, vector in reference.items():
        np.testing.assert_allclose(resumed_vectors[item_id], vector, atol=1e-6)
    assert ({i: r.path for i, r in resumed.records(range(48)).items()}
            == {i: r.path for i, r in labelled.records(range(48)).items()})


def test_a_stale_partial_of_another_model_is_not_reused(labelled: Index, checkpoint: Path,
                                                        other_checkpoint: Path,
                                                        tiny_folder: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module, "CHUNK_ITEMS", 10)
    out = tmp_path / "index"
    monkeypatch.setattr(build_module, "embed_everywhere", CountingEmbed(fail_on_call=4))
    with pytest.raises(KeyboardInterrupt):
        build(other_checkpoint, tiny_folder, out)
    counting = CountingEmbed()
    monkeypatch.setattr(build_module, "embed_everywhere", counting)
    index = build(checkpoint, tiny_folder, out)
    assert counting.items == 48  # everything embedded again, by the right model
    _, info = load_checkpoint(checkpoint)
    assert index.fingerprint == info.fingerprint
    vectors = by_id(index)
    for item_id, vector in by_id(labelled).items():  # the same model and images, in one go
        np.testing.assert_allclose(vectors[item_id], vector, atol=1e-6)


def test_building_onto_an_index_needs_overwrite(labelled: Index, checkpoint: Path,
                                                tiny_folder: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = copy_index(labelled.path, tmp_path)
    before = folder_state(out)
    with pytest.raises(SearchIndexError, match="already exists"):
        build(checkpoint, images_of(tiny_folder)[:5], out)
    assert folder_state(out) == before
    # An overwrite that is interrupted leaves the old index in force ...
    monkeypatch.setattr(build_module, "embed_everywhere", CountingEmbed(fail_on_call=1))
    with pytest.raises(KeyboardInterrupt):
        build(checkpoint, images_of(tiny_folder)[:5], out, overwrite=True)
    with Index.open(out) as old:
        assert len(old) == 48
    # ... and one that finishes replaces it.
    monkeypatch.setattr(build_module, "embed_everywhere", embed)
    with build(checkpoint, images_of(tiny_folder)[:5], out, overwrite=True) as replaced:
        assert len(replaced) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


# -- generations: vectors and rows change together ---------------------------------------------


def test_each_change_leaves_one_vectors_file(labelled: Index, new_images: Path,
                                             tmp_path: Path) -> None:
    folder = copy_index(labelled.path, tmp_path)
    assert vector_files(folder) == ["vectors-0.faiss"]
    with Index.open(folder) as index:
        index.add(new_images, **QUIET)
        assert vector_files(folder) == ["vectors-1.faiss"]
        index.remove([0, 48])
        assert vector_files(folder) == ["vectors-2.faiss"]
    with Index.open(folder) as reopened:
        assert len(reopened) == 49 and reopened.store.meta["generation"] == 2


def test_a_crash_before_the_rows_commit_keeps_the_old_generation(
        labelled: Index, new_images: Path, tiny_folder: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_index(labelled.path, tmp_path)
    shutil.copy(folder / "vectors-0.faiss", folder / "vectors-7.faiss")  # an older orphan
    write_faiss = store_module.write_faiss

    def write_then_die(index: Any, path: Path) -> None:
        write_faiss(index, path)
        raise KeyboardInterrupt  # the process dies between the two writes

    index = Index.open(folder)
    monkeypatch.setattr(store_module, "write_faiss", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        index.add(new_images, **QUIET)
    monkeypatch.setattr(store_module, "write_faiss", write_faiss)
    index.close()
    assert vector_files(folder) == ["vectors-0.faiss", "vectors-1.faiss", "vectors-7.faiss"]

    query = images_of(tiny_folder)[5]
    with Index.open(folder) as reopened:
        assert len(reopened) == 48 and reopened.store.meta["generation"] == 0
        assert reopened.search(query, k=3) == labelled.search(query, k=3)
        assert reopened.search(images_of(new_images), k=1)[0][0].id < 48
        reopened.remove([0])  # the next change clears every orphan
    assert vector_files(folder) == ["vectors-1.faiss"]
    with Index.open(folder) as after:
        assert len(after) == 47 and 0 not in after.store.all_ids().tolist()


def test_a_failed_rows_commit_removes_its_vectors_file(labelled: Index, new_images: Path,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_index(labelled.path, tmp_path)

    def failing_insert(*args: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with Index.open(folder) as index:
        monkeypatch.setattr(store_module, "_insert", failing_insert)
        with pytest.raises((sqlite3.OperationalError, SearchIndexError)):
            index.add(new_images, **QUIET)
        assert len(index) == 48
    assert vector_files(folder) == ["vectors-0.faiss"]
    with Index.open(folder) as reopened:
        assert len(reopened) == 48


def test_a_second_writer_cannot_break_the_folder(labelled: Index, new_images: Path,
                                                 tmp_path: Path) -> None:
    """Two open Index objects on one folder (a server and `lookalike index add`)."""
    folder = copy_index(labelled.path, tmp_path)
    with Index.open(folder) as first, Index.open(folder) as second:
        added = first.add(images_of(new_images)[:1], **QUIET)
        with contextlib.suppress(SearchIndexError):  # refusing the stale writer is fine
            second.add(images_of(new_images)[1:], **QUIET)
    with Index.open(folder) as reopened:  # but the folder must still open, whole
        ids = reopened.store.all_ids().tolist()
        assert set(added.tolist()) <= set(ids)
        assert sorted(stored_ids(reopened.vectors).tolist()) == ids


# -- bad input -------------------------------------------------------------------------------


def one_line_error(action: Callable[[], Any], error: type[Exception] = LookalikeError) -> str:
    with pytest.raises(error) as raised:
        action()
    message = str(raised.value)
    assert message and "\n" not in message
    return message


def test_bad_query_images_are_named(labelled: Index, tiny_folder: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not a png")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(Path(images_of(tiny_folder)[0]).read_bytes()[:80])
    good = images_of(tiny_folder)[0]
    assert "garbage.png" in one_line_error(lambda: labelled.search([good, str(garbage)], k=2))
    assert "truncated.png" in one_line_error(lambda: labelled.search(str(truncated), k=2))
    missing = one_line_error(lambda: labelled.search(str(tmp_path / "nowhere.png"), k=2))
    assert "nowhere.png" in missing and "no such file" in missing
    assert "query 2" in one_line_error(lambda: labelled.search([good, b"junk"], k=2))
    assert "query 1" in one_line_error(
        lambda: labelled.search(np.zeros((28, 28, 3), dtype=np.float32), k=2))
    assert "[0, 1]" in one_line_error(lambda: labelled.search(torch.full((3, 28, 28), 2.0), k=2))


def test_k_and_threshold_out_of_range(labelled: Index, tiny_folder: Path) -> None:
    query = images_of(tiny_folder)[0]
    too_many = one_line_error(lambda: labelled.search(query, k=49), ConfigError)
    assert "k=49" in too_many and "48" in too_many
    assert labelled.search(query, k=48)[0][-1].rank == 48  # the whole collection is fine
    assert "k must be >= 1" in one_line_error(lambda: labelled.search(query, k=0), ConfigError)
    one_line_error(lambda: labelled.search_vectors(np.ones((1, 16)), k=-1), ConfigError)
    one_line_error(lambda: labelled.more_like([0], k=48), ConfigError)  # itself is left out
    assert "threshold" in one_line_error(lambda: labelled.duplicates(-0.1), ConfigError)
    assert "no such item: 4242" in one_line_error(lambda: labelled.more_like([4242], k=2),
                                                    SearchIndexError)
    one_line_error(lambda: labelled.search_vectors(np.ones((1, 8)), k=2))  # wrong dimension


def test_missing_or_damaged_index_folders(labelled: Index, tmp_path: Path) -> None:
    def damaged(name: str, change: Callable[[Path], Any]) -> str:
        folder = tmp_path / name
        shutil.copytree(labelled.path, folder)
        change(folder)
        return one_line_error(lambda: Index.open(folder), SearchIndexError)

    assert "no such index folder" in one_line_error(lambda: Index.open(tmp_path / "nowhere"))
    assert "index.sqlite is missing" in damaged(
        "no-db", lambda f: (f / "index.sqlite").unlink())
    assert "vectors-0.faiss is missing" in damaged(
        "no-vectors", lambda f: (f / "vectors-0.faiss").unlink())
    assert "damaged" in damaged(
        "bad-db", lambda f: (f / "index.sqlite").write_bytes(b"\0garbage" * 512))
    assert "damaged" in damaged(
        "bad-vectors", lambda f: (f / "vectors-0.faiss").write_bytes(b"garbage" * 20))

    def from_the_future(folder: Path) -> None:
        with contextlib.closing(sqlite3.connect(folder / "index.sqlite")) as db, db:
            db.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")

    newer = damaged("v99", from_the_future)
    assert "format 99" in newer and "rebuild" in newer


# -- duplicates ------------------------------------------------------------------------------


def test_duplicates_groups_exact_copies(checkpoint: Path, tmp_path: Path) -> None:
    originals = images_of(write_class_folder(tmp_path / "originals", classes=3, per_class=4))
    copies = tmp_path / "copies"
    copies.mkdir()
    for name, source in (("a.png", 2), ("b.png", 2), ("c.png", 9)):
        shutil.copy(originals[source], copies / name)
    files = [*originals, *images_of(copies)]  # ids 0..11 originals, 12..14 a, b, c
    index = build(checkpoint, files, tmp_path / "index")
    vectors = by_id(index)
    distinct = np.stack([vectors[i] for i in range(12)])
    gaps = np.linalg.norm(distinct[:, None] - distinct[None], axis=2)[np.triu_indices(12, 1)]
    assert gaps.min() > 5e-3  # the test's premise: distinct images are not duplicates
    assert index.duplicates(1e-3) == [[2, 12, 13], [9, 14]]
    assert index.duplicates(1e-3, neighbors=3) == [[2, 12, 13], [9, 14]]
    everything = index.duplicates(10.0, neighbors=14)
    assert everything == [list(range(15))]


def test_no_duplicates_in_a_collection_without_copies(labelled: Index) -> None:
    assert labelled.duplicates(0.0) == []
    assert labelled.duplicates(1e-3) == []


# -- the search grid -------------------------------------------------------------------------


def frame_colour(figure: Figure, position: int) -> tuple[float, ...]:
    return tuple(figure.axes[position].spines["left"].get_edgecolor())


def test_search_grid_frames_right_and_wrong(labelled: Index, tiny_folder: Path) -> None:
    queries = [images_of(tiny_folder / "class_1")[3], images_of(tiny_folder / "class_2")[0]]
    k = 5
    results = labelled.search(queries, k=k)
    figure = plot_search_grid(labelled, [decode_image(q) for q in queries], results,
                              ["class_1", None])
    assert isinstance(figure, Figure) and len(figure.axes) == 2 * (k + 1)
    for column, hit in enumerate(results[0], start=1):
        expected = RIGHT if hit.label == "class_1" else WRONG
        assert frame_colour(figure, column) == to_rgba(expected)
    for position in range(k + 1, 2 * (k + 1)):  # the query of unknown label: grey frames
        assert frame_colour(figure, position) == to_rgba(QUERY)


def test_search_grid_pads_short_rows_and_greys_unlabelled(labelled: Index,
                                                          tiny_folder: Path) -> None:
    queries = images_of(tiny_folder)[:3]
    results = labelled.search(queries, k=4)
    results[1] = results[1][:2]
    figure = plot_search_grid(labelled, [Image.open(q) for q in queries], results)
    assert len(figure.axes) == 3 * 5
    assert {frame_colour(figure, i) for i in range(15)} == {to_rgba(QUERY)}
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")


def test_a_benchmark_layout_is_indexed_with_its_own_labels(checkpoint: Path,
                                                           tmp_path: Path) -> None:
    """A CUB-200-2011 folder is read by its layout reader, not scanned as class folders."""
    from .benchmark_layouts import write_cub

    cub = write_cub(tmp_path / "data")
    index = build(checkpoint, cub, tmp_path / "cub-index", split="test")
    labels = {r.label for r in index.records(list(range(len(index)))).values()}
    assert len(index) == 9 and len(labels) == 3  # the test half: 3 classes x 3 images
    assert all(label and label[:3].isdigit() for label in labels)  # e.g. 004.Some_bird

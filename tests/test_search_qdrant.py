"""The Qdrant backend (lookalike/search/qdrant/), through qdrant-client's local mode: the
real client code, computed in-process (exact search), so it must agree with FAISS's flat
index on the same vectors.

Every index here is a FAISS folder over the tiny class folder plus 400 random vectors of
in-memory items (so distances are spread out and images come from both kinds of item),
exported to Qdrant, or a Qdrant build of the same images by the same model.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lookalike.cli import main
from lookalike.data import ArrayCollection
from lookalike.errors import ConfigError, SearchIndexError
from lookalike.search import Index
from lookalike.search.qdrant import upload as upload_module
from lookalike.search.qdrant.build import export_to_qdrant
from lookalike.search.qdrant.connection import connect, disconnect
from lookalike.search.qdrant.index import QdrantIndex

from .conftest import fails, images_of, save_tiny_checkpoint, write_class_folder
from .test_search_distances import checkpoint_for

pytest.importorskip("qdrant_client")

QUIET: dict[str, Any] = {"progress": False, "log": lambda message: None}
RANDOM_ITEMS = 400
DISTANCES = ("euclidean", "squared_euclidean", "cosine")
ATOL = 1e-5


def random_items(dim: int, seed: int = 0) -> tuple[np.ndarray, ArrayCollection]:
    """RANDOM_ITEMS random vectors with in-memory images (2 labels) to add to an index."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(RANDOM_ITEMS, 8, 8), dtype=np.uint8)
    labels = rng.integers(0, 2, size=RANDOM_ITEMS)
    vectors = rng.normal(size=(RANDOM_ITEMS, dim)).astype(np.float32) * 0.3
    return vectors, ArrayCollection(pixels, labels, ["noise_a", "noise_b"], name="noise")


def faiss_index(root: Path, distance: str) -> Index:
    """A flat FAISS folder: the tiny class folder, then RANDOM_ITEMS random vectors."""
    folder = write_class_folder(root / "images", classes=3, per_class=8)
    checkpoint = (save_tiny_checkpoint(root / "checkpoint", seed=0) if distance == "euclidean"
                  else checkpoint_for(root, distance, images=images_of(folder)))
    index = Index.build(checkpoint, folder, root / "faiss", **QUIET)  # auto: flat
    vectors, collection = random_items(index.dim)
    index.add_vectors(vectors, collection, index.fingerprint)
    return index


@pytest.fixture(scope="module", params=DISTANCES)
def pair(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Index, Index]]:
    """(FAISS flat index, the same index exported to a local-mode Qdrant collection)."""
    root = tmp_path_factory.mktemp(f"qdrant-{request.param}")
    source = faiss_index(root, request.param)
    target = export_to_qdrant(source.path, root / "qdrant-store", root / "exported", **QUIET)
    exported = Index.open(target)
    yield source, exported
    exported.close()
    source.close()


def queries(index: Index, n: int = 30, seed: int = 1) -> np.ndarray:
    dim = index.dim
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32) * 0.3


def assert_same_hits(ours: list[list[Any]], theirs: list[list[Any]]) -> None:
    assert len(ours) == len(theirs)
    for row_ours, row_theirs in zip(ours, theirs, strict=True):
        assert [h.id for h in row_ours] == [h.id for h in row_theirs]
        np.testing.assert_allclose([h.distance for h in row_ours],
                                   [h.distance for h in row_theirs], atol=ATOL, rtol=0)
        assert [(h.source, h.label, h.path) for h in row_ours] == \
            [(h.source, h.label, h.path) for h in row_theirs]


# -- the same answers as FAISS's flat index --------------------------------------------


def test_an_opened_qdrant_folder_is_a_qdrant_index(pair: tuple[Index, Index]) -> None:
    faiss, qdrant = pair
    assert isinstance(qdrant, QdrantIndex) and not isinstance(faiss, QdrantIndex)
    assert len(qdrant) == len(faiss) == 24 + RANDOM_ITEMS
    assert qdrant.distance == faiss.distance and qdrant.fingerprint == faiss.fingerprint
    info = qdrant.info()
    assert (info["backend"], info["kind"], info["items"]) == ("qdrant", "qdrant", len(faiss))
    assert info["labels"] == faiss.info()["labels"]


def test_search_matches_faiss_flat(pair: tuple[Index, Index]) -> None:
    faiss, qdrant = pair
    vectors = queries(faiss)
    assert_same_hits(qdrant.search_embeddings(vectors, k=10),
                     faiss.search_embeddings(vectors, k=10))
    theirs, ours = faiss.search_vectors(vectors, k=7), qdrant.search_vectors(vectors, k=7)
    np.testing.assert_array_equal(ours.ids, theirs.ids)
    np.testing.assert_allclose(ours.distances, theirs.distances, atol=ATOL, rtol=0)


def test_image_queries_match_faiss_flat(pair: tuple[Index, Index]) -> None:
    faiss, qdrant = pair
    files = [faiss.records([i])[i].path for i in (0, 9, 17)]
    assert_same_hits(qdrant.search(files, k=5), faiss.search(files, k=5))
    assert [row[0].id for row in qdrant.search(files, k=1)] == [0, 9, 17]


def test_more_like_matches_faiss_flat(pair: tuple[Index, Index]) -> None:
    faiss, qdrant = pair
    ids = [0, 5, 23, 24, 100, 423]
    ours = qdrant.more_like(ids, k=8)
    assert_same_hits(ours, faiss.more_like(ids, k=8))
    assert all(item not in [h.id for h in row] for item, row in zip(ids, ours, strict=True))


def test_duplicates_match_faiss_flat(pair: tuple[Index, Index]) -> None:
    faiss, qdrant = pair
    nearest = faiss.search_vectors(queries(faiss, 200), k=1).distances[:, 0]
    threshold = float(np.quantile(nearest, 0.3))  # some groups, not one giant one
    groups = faiss.duplicates(threshold, neighbors=5)
    assert groups and max(map(len, groups)) < len(faiss) // 2
    assert qdrant.duplicates(threshold, neighbors=5) == groups


def test_items_and_images_come_from_the_payload_and_the_folder(
        pair: tuple[Index, Index]) -> None:
    faiss, qdrant = pair
    ids = [0, 23, 24, 423, 10**6]
    assert qdrant.records(ids) == faiss.records(ids)
    for item_id in (3, 300):  # a file item, an in-memory one
        assert np.array_equal(np.asarray(qdrant.image(item_id)),
                              np.asarray(faiss.image(item_id)))
    with pytest.raises(SearchIndexError, match="no such item: 999999"):
        qdrant.image(999_999)
    assert qdrant.sample_ids(5, seed=3).tolist() == faiss.sample_ids(5, seed=3).tolist()


def test_unknown_ids_and_bad_k_are_one_line_errors(pair: tuple[Index, Index]) -> None:
    _, qdrant = pair
    with pytest.raises(SearchIndexError, match="no such item: 5000"):
        qdrant.more_like([1, 5000], k=3)
    with pytest.raises(SearchIndexError, match="no such item: -1"):
        qdrant.more_like([-1], k=3)
    with pytest.raises(ConfigError, match="k must be >= 1"):
        qdrant.search_embeddings(queries(qdrant, 1), k=0)
    with pytest.raises(ConfigError, match="more than the"):
        qdrant.search_embeddings(queries(qdrant, 1), k=len(qdrant) + 1)


# -- building, changing, reopening -----------------------------------------------------


@pytest.fixture
def built(tmp_path: Path, checkpoint: Path, tiny_folder: Path) -> Iterator[QdrantIndex]:
    index = Index.build(checkpoint, tiny_folder, tmp_path / "photos", qdrant=tmp_path / "q",
                        **QUIET)
    assert isinstance(index, QdrantIndex)
    yield index
    index.close()


def test_a_build_holds_the_same_vectors_as_a_faiss_build(
        built: QdrantIndex, tmp_path: Path, checkpoint: Path, tiny_folder: Path) -> None:
    with Index.build(checkpoint, tiny_folder, tmp_path / "faiss", **QUIET) as faiss:
        assert built.collection == "photos"  # the folder's name
        assert len(built) == len(faiss) == 48
        files = images_of(tiny_folder)[:6]
        assert_same_hits(built.search(files, k=6), faiss.search(files, k=6))
        assert built.labels() == faiss.labels()


def test_add_remove_and_reopen(built: QdrantIndex, tmp_path: Path, checkpoint: Path) -> None:
    extra = write_class_folder(tmp_path / "extra", classes=1, per_class=3, seed=5)
    ids = built.add(extra, **QUIET)
    assert ids.tolist() == [48, 49, 50] and len(built) == 51
    first = images_of(extra)[0]
    assert built.search([first], k=1)[0][0].id == 48
    assert built.remove([48, 2]) == 2 and len(built) == 49
    assert 48 not in built.records([48]) and built.search([first], k=1)[0][0].id != 48
    with pytest.raises(SearchIndexError, match=r"no such item: 1000 .*nothing was removed"):
        built.remove([3, 1000])
    with pytest.raises(SearchIndexError, match="would leave an empty index"):
        built.remove(built.sample_ids(len(built)).tolist())
    assert len(built) == 49 and 3 in built.records([3])
    generation = built.generation
    results = built.search([first], k=5)
    built.close()
    with Index.open(built.path) as reopened:
        assert isinstance(reopened, QdrantIndex)
        assert (len(reopened), reopened.generation) == (49, generation)
        assert_same_hits(reopened.search([first], k=5), results)
        assert reopened.add([first], **QUIET).tolist() == [51]  # ids are never reused


def test_a_second_folder_on_the_collection_sees_the_changes(
        built: QdrantIndex, tmp_path: Path) -> None:
    """Two handles on one collection (two services): one adds, the other's next search and
    refresh see it; they hand out different ids."""
    shutil.copytree(built.path, tmp_path / "second")
    with Index.open(tmp_path / "second") as second:
        assert built.add([built.records([0])[0].path], **QUIET).tolist() == [48]
        assert second.refresh() and len(second) == 49
        assert second.add([built.records([1])[1].path], **QUIET).tolist() == [49]
        assert built.refresh() and len(built) == 50


def test_an_interrupted_build_resumes_and_users_see_the_old_collection_until_the_switch(
        tmp_path: Path, checkpoint: Path, other_checkpoint: Path, tiny_folder: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    store, out = tmp_path / "q", tmp_path / "idx"
    Index.build(checkpoint, tiny_folder, out, qdrant=store, **QUIET).close()
    monkeypatch.setattr(upload_module, "UPLOAD_BATCH", 10)
    sent: list[int] = []

    def failing_upsert(client: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(1)
        if len(sent) == 3:
            raise KeyboardInterrupt  # a Ctrl-C in the middle of the upload
        return original(client, *args, **kwargs)

    from qdrant_client import QdrantClient

    original = QdrantClient.upsert
    monkeypatch.setattr(QdrantClient, "upsert", failing_upsert)
    with pytest.raises(KeyboardInterrupt):
        Index.build(other_checkpoint, tiny_folder, out, qdrant=store, overwrite=True, **QUIET)
    with Index.open(out) as old:  # the folder and the alias still name the old model
        assert old.fingerprint != _fingerprint(other_checkpoint)
        assert len(old) == 48 and old.search([images_of(tiny_folder)[0]], k=1)[0][0].id == 0
    lines: list[str] = []
    with Index.build(other_checkpoint, tiny_folder, out, qdrant=store, overwrite=True,
                     progress=False, log=lines.append) as new:
        assert new.fingerprint == _fingerprint(other_checkpoint) and len(new) == 48
    assert any("resuming the unfinished upload" in line and "20 of 48" in line
               for line in lines), lines
    assert len(sent) == 3 + 3  # the two whole batches were not sent again
    client = connect(str(store.resolve()))
    try:
        names = {c.name for c in client.get_collections().collections}
        assert len(names) == 1  # the old collection was deleted after the switch
    finally:
        disconnect(str(store.resolve()))


def _fingerprint(checkpoint: Path) -> str:
    from lookalike.models import load_checkpoint

    return load_checkpoint(checkpoint)[1].fingerprint


def test_an_interrupted_export_resumes(tmp_path: Path, checkpoint: Path, tiny_folder: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with Index.build(checkpoint, tiny_folder, tmp_path / "faiss", **QUIET) as source:
        expected = source.search([images_of(tiny_folder)[7]], k=10)
    monkeypatch.setattr(upload_module, "UPLOAD_BATCH", 16)
    calls = {"n": 0}
    from qdrant_client import QdrantClient

    original = QdrantClient.upsert

    def dying(client: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("the network went away")
        return original(client, *args, **kwargs)

    monkeypatch.setattr(QdrantClient, "upsert", dying)
    with pytest.raises(SearchIndexError, match=r"cannot upload.*the network went away"):
        export_to_qdrant(tmp_path / "faiss", tmp_path / "q", **QUIET)
    assert not (tmp_path / "faiss-qdrant").exists()  # not in place until whole
    lines: list[str] = []
    target = export_to_qdrant(tmp_path / "faiss", tmp_path / "q", progress=False,
                              log=lines.append)
    assert any("16 of 48 points there" in line for line in lines), lines
    with Index.open(target) as exported:
        assert_same_hits(exported.search([images_of(tiny_folder)[7]], k=10), expected)
    assert (tmp_path / "faiss" / "index.sqlite").is_file()  # the source is untouched


def test_export_refuses_a_sample_that_does_not_match(
        tmp_path: Path, checkpoint: Path, tiny_folder: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    Index.build(checkpoint, tiny_folder, tmp_path / "faiss", **QUIET).close()
    from qdrant_client import QdrantClient

    original = QdrantClient.upsert

    def corrupting(client: Any, name: str, points: Any, **kwargs: Any) -> Any:
        points.vectors = [[v + 0.01 for v in row] for row in points.vectors]
        return original(client, name, points=points, **kwargs)

    monkeypatch.setattr(QdrantClient, "upsert", corrupting)
    with pytest.raises(SearchIndexError, match="does not hold the vector sent"):
        export_to_qdrant(tmp_path / "faiss", tmp_path / "q", **QUIET)
    assert not (tmp_path / "faiss-qdrant").exists()


# -- bad input: one line, nothing changed ----------------------------------------------


def test_an_unreachable_server_is_one_line_and_nothing_is_written(
        tmp_path: Path, checkpoint: Path, tiny_folder: Path) -> None:
    with pytest.raises(SearchIndexError, match=r"Qdrant at http://127\.0\.0\.1:9: cannot "
                       "connect") as caught:
        Index.build(checkpoint, tiny_folder, tmp_path / "idx", qdrant="http://127.0.0.1:9",
                    **QUIET)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "idx").exists() and not (tmp_path / "idx.partial").exists()


def test_an_existing_collection_of_another_model_is_refused(
        built: QdrantIndex, tmp_path: Path, other_checkpoint: Path, tiny_folder: Path) -> None:
    with pytest.raises(SearchIndexError, match=r"collection 'photos' exists already, of "
                       r"another model.*nothing changed"):
        Index.build(other_checkpoint, tiny_folder, tmp_path / "other", qdrant=tmp_path / "q",
                    collection="photos", **QUIET)
    assert not (tmp_path / "other.partial").exists()  # refused before embedding
    assert len(built) == 48 and built.search([built.records([0])[0].path], k=1)[0][0].id == 0


def test_a_plain_collection_of_that_name_is_refused(tmp_path: Path, checkpoint: Path,
                                                    tiny_folder: Path) -> None:
    from qdrant_client import models

    location = str((tmp_path / "q").resolve())
    client = connect(location)
    try:
        client.create_collection("theirs", vectors_config=models.VectorParams(
            size=4, distance=models.Distance.DOT))
    finally:
        disconnect(location)
    with pytest.raises(SearchIndexError, match="'theirs' is a collection that lookalike did "
                       "not make"):
        Index.build(checkpoint, tiny_folder, tmp_path / "idx", qdrant=tmp_path / "q",
                    collection="theirs", **QUIET)


def _edit_manifest(folder: Path, **changes: Any) -> None:
    manifest = json.loads((folder / "index.json").read_text())
    (folder / "index.json").write_text(json.dumps({**manifest, **changes}))


def test_a_missing_collection_is_one_line(built: QdrantIndex, tmp_path: Path) -> None:
    shutil.copytree(built.path, tmp_path / "copy")
    _edit_manifest(tmp_path / "copy", collection="gone")
    with pytest.raises(SearchIndexError, match="no collection 'gone'"):
        Index.open(tmp_path / "copy")


def test_a_collection_of_another_model_or_dimension_is_refused_on_open(
        built: QdrantIndex, tmp_path: Path) -> None:
    shutil.copytree(built.path, tmp_path / "copy")
    _edit_manifest(tmp_path / "copy", fingerprint="0123456789abcdef")
    with pytest.raises(SearchIndexError, match=r"holds vectors of model .* but this index "
                       r"folder's model is 0123456789abcdef"):
        Index.open(tmp_path / "copy")
    _edit_manifest(tmp_path / "copy", fingerprint=built.fingerprint, dim=32)
    with pytest.raises(SearchIndexError, match="dimension 16, but the model in this index "
                       "folder makes 32"):
        Index.open(tmp_path / "copy")


def test_a_locked_local_folder_is_one_line(built: QdrantIndex) -> None:
    """Another process holds the local folder: the client's lock error becomes one line."""
    import subprocess
    import sys

    code = ("import sys; from lookalike.search import Index\n"
            "try:\n    Index.open(sys.argv[1])\n"
            "except Exception as e:\n    print(type(e).__name__, e)")
    out = subprocess.run([sys.executable, "-c", code, str(built.path)], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert out.startswith("SearchIndexError") and "open in another process" in out
    assert out.count("\n") == 1


# -- the command line ------------------------------------------------------------------


def test_cli_build_info_search_and_export(tmp_path: Path, checkpoint: Path,
                                          tiny_folder: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "q"
    assert main(["index", "build", "--checkpoint", str(checkpoint), "--images",
                 str(tiny_folder), "--out", str(tmp_path / "idx"), "--backend", "qdrant",
                 "--qdrant", str(store), "--collection", "tiny", "--quiet"]) == 0
    assert "Qdrant collection 'tiny'" in capsys.readouterr().out
    assert main(["index", "info", "--index", str(tmp_path / "idx"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["backend"], info["collection"], info["items"]) == ("qdrant", "tiny", 48)
    query = images_of(tiny_folder)[4]
    assert main(["search", "--index", str(tmp_path / "idx"), query, "-k", "3", "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    assert main(["index", "build", "--checkpoint", str(checkpoint), "--images",
                 str(tiny_folder), "--out", str(tmp_path / "faiss"), "--quiet"]) == 0
    assert main(["index", "export", "--index", str(tmp_path / "faiss"), "--to", "qdrant",
                 str(store), "--quiet"]) == 0
    assert "exported 48 items to Qdrant collection 'faiss-qdrant'" in capsys.readouterr().out
    assert main(["search", "--index", str(tmp_path / "faiss-qdrant"), query, "-k", "3",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == ours


@pytest.mark.parametrize(("options", "message"), [
    (["--backend", "qdrant"], "--backend qdrant needs --qdrant URL_OR_PATH"),
    (["--qdrant", "somewhere"], "--qdrant is for --backend qdrant"),
    (["--backend", "qdrant", "--qdrant", "q", "--kind", "hnsw"], "--kind hnsw is a FAISS"),
    (["--backend", "qdrant", "--qdrant", ":memory:"], "would vanish with this process"),
])
def test_cli_refuses_bad_backend_options(tmp_path: Path, checkpoint: Path, tiny_folder: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         options: list[str], message: str) -> None:
    line = fails(capsys, ["index", "build", "--checkpoint", str(checkpoint), "--images",
                          str(tiny_folder), "--out", str(tmp_path / "idx"), *options])
    assert message in line
    assert not (tmp_path / "idx").exists()


def test_cli_export_refuses_another_backend_and_a_qdrant_source(
        built: QdrantIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "must be qdrant" in fails(capsys, ["index", "export", "--index", str(built.path),
                                              "--to", "milvus", "x"])
    assert "is a Qdrant index already" in fails(
        capsys, ["index", "export", "--index", str(built.path), "--to", "qdrant",
                 str(tmp_path / "q")])


def test_serve_refuses_several_workers_on_a_local_mode_folder(built: QdrantIndex) -> None:
    from lookalike.service.server import serve

    with pytest.raises(ConfigError, match=r"--workers 2: .* local mode .* --workers 1"):
        serve(built.path, workers=2, log=lambda line: None)

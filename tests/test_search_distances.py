"""One distance end to end: an index searches by its model's distance and reports it.

For every registered distance (and for cosine and squared Euclidean on a model that does
not L2-normalise), each distance ``Index.search`` reports equals a float64 brute force of
``pairwise_distance`` on the model's own embeddings, and the neighbours come in that order.
Folders written before indexes stated a distance still open, as Euclidean.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from lookalike.distances import DISTANCES, METRICS, Distance, pairwise_distance, register_distance
from lookalike.errors import SearchIndexError
from lookalike.models import Embedder, build_embedder, save_checkpoint
from lookalike.search import Index, IndexSpec
from lookalike.search import store as store_module
from lookalike.search.queries import query_batch
from lookalike.search.vectors import build_vector_index, stored_ids, stored_vectors

from .conftest import TINY_EMBEDDER, images_of, write_class_folder

VARIANTS = [(name, True) for name in METRICS] + [("cosine", False), ("squared_euclidean", False)]
QUIET = {"progress": False, "log": lambda message: None}


def spread_out(model: Embedder, images: list[str]) -> None:
    """Centre and scale the head's projection on ``images``: an untrained CNN maps every
    image near one point (distances ~1e-5, too close to float32 rounding to test units);
    after this its embeddings of such images spread over distances of order 1."""
    batch = query_batch(images, TINY_EMBEDDER.input_size, TINY_EMBEDDER.in_channels)
    normalize, model.head.normalize = model.head.normalize, False
    with torch.no_grad():
        raw = model.eval()(batch)  # (N, D) before L2 normalisation
        scale = 1.0 / raw.std(dim=0).mean()
        model.head.proj.bias -= raw.mean(dim=0)
        model.head.proj.weight *= scale
        model.head.proj.bias *= scale
    model.head.normalize = normalize


def checkpoint_for(root: Path, distance: str, normalize: bool = True,
                   images: list[str] | None = None) -> Path:
    """The tiny untrained model (spread out over ``images``), saved as trained with
    ``distance``."""
    config = dataclasses.replace(TINY_EMBEDDER, distance=distance, normalize=normalize)
    model = build_embedder(config, pretrained=False, seed=0)
    if images:
        spread_out(model, images)
    return save_checkpoint(root / "checkpoint", model, class_names=["a", "b", "c"])


def item_embeddings(index: Index) -> np.ndarray:
    """(N, D) the model's embeddings of the items (not the stored vectors), by item id."""
    records = index.records(index.store.all_ids().tolist())
    assert sorted(records) == list(range(len(index)))
    return index.embed([records[i].path for i in range(len(index))])


def brute_force(index: Index, queries: np.ndarray, distance: str) -> np.ndarray:
    """(Q, N) float64 ``pairwise_distance`` from the query embeddings to every item."""
    return pairwise_distance(torch.from_numpy(queries).double(),
                             torch.from_numpy(item_embeddings(index)).double(),
                             distance).numpy()


@pytest.fixture(scope="module")
def queries(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """6 images that are in no index."""
    return images_of(write_class_folder(tmp_path_factory.mktemp("queries"), per_class=2,
                                        seed=21))


@pytest.fixture(scope="module")
def indexes(tiny_folder: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, bool], Index]]:
    """A flat index over tiny_folder for each (distance, normalize) variant."""
    built = {}
    for distance, normalize in VARIANTS:
        root = tmp_path_factory.mktemp(f"{distance}-{normalize}")
        checkpoint = checkpoint_for(root, distance, normalize, images_of(tiny_folder))
        built[distance, normalize] = Index.build(checkpoint, tiny_folder, root / "index",
                                                 spec=IndexSpec("flat"), **QUIET)
    yield built
    for index in built.values():
        index.close()


@pytest.mark.parametrize(("distance", "normalize"), VARIANTS)
def test_search_reports_the_models_distance(distance: str, normalize: bool,
                                            indexes: dict[tuple[str, bool], Index],
                                            queries: list[str]) -> None:
    index = indexes[distance, normalize]
    assert index.distance == distance and index.info()["distance"] == distance
    assert index.metric == DISTANCES.get(distance).faiss_metric
    k = 12
    results = index.search(queries, k=k)
    exact = brute_force(index, index.embed(queries), distance)
    for row, hits in enumerate(results):
        reported = np.array([hit.distance for hit in hits])
        expected = exact[row, [hit.id for hit in hits]]
        np.testing.assert_allclose(reported, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(reported, np.sort(exact[row])[:k], rtol=1e-5, atol=1e-5)
        assert np.all(np.diff(reported) >= 0)


def test_the_unit_differs_between_distances(indexes: dict[tuple[str, bool], Index],
                                            queries: list[str]) -> None:
    """The same model (same weights) reports d for euclidean and d^2 for squared_euclidean."""
    plain = indexes["euclidean", True].search(queries[:2], k=5)
    squared = indexes["squared_euclidean", True].search(queries[:2], k=5)
    for a, b in zip(plain, squared, strict=True):
        assert [h.id for h in a] == [h.id for h in b]
        np.testing.assert_allclose([h.distance ** 2 for h in a], [h.distance for h in b],
                                   rtol=1e-4, atol=1e-6)


def test_cosine_of_a_model_that_does_not_normalise(indexes: dict[tuple[str, bool], Index],
                                                   queries: list[str]) -> None:
    """Cosine search normalises what it stores and what it is asked; the raw embeddings are
    not unit-norm, so without that the inner product would not be a cosine."""
    index = indexes["cosine", False]
    raw = index.embed(queries)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(stored_vectors(index.vectors), axis=1), 1.0,
                               atol=1e-5)
    assert all(0.0 <= hit.distance <= 2.0 for row in index.search(queries, k=5) for hit in row)


def threshold_after(distances: np.ndarray, rank: int) -> float:
    """A threshold in the first clear gap (1e-4 relative) after the ``rank``-th smallest
    pairwise distance: float32 rounding cannot move a pair across it."""
    values = np.sort(distances[np.triu_indices(len(distances), 1)])
    gaps = np.flatnonzero(np.diff(values) > 1e-4 * np.maximum(values[:-1], 1e-3))
    at = gaps[gaps >= rank][0]
    return float((values[at] + values[at + 1]) / 2)


def components(distances: np.ndarray, threshold: float) -> list[list[int]]:
    """Groups of items linked by distance <= threshold: a plain union-find, the oracle."""
    parent = list(range(len(distances)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(distances)):
        for j in range(i + 1, len(distances)):
            if distances[i, j] <= threshold:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(distances)):
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


@pytest.mark.parametrize(("distance", "normalize"), VARIANTS)
def test_duplicates_threshold_is_in_the_models_unit(distance: str, normalize: bool,
                                                    indexes: dict[tuple[str, bool], Index]
                                                    ) -> None:
    index = indexes[distance, normalize]
    exact = brute_force(index, item_embeddings(index), distance)  # (48, 48)
    for rank in (3, 40):
        threshold = threshold_after(exact, rank)
        expected = components(exact, threshold)
        assert expected  # the test's premise: some items are within the threshold
        assert index.duplicates(threshold, neighbors=len(index) - 1) == expected


# -- a distance registered from outside ------------------------------------------------------


def manhattan(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, M) L1 distances (the toy of docs/extending.md, "A distance")."""
    return torch.cdist(x, y, p=1)


@pytest.fixture
def registered_manhattan() -> Iterator[Distance]:
    distance = register_distance(Distance("manhattan", manhattan, faiss_metric="L1",
                                          from_faiss=lambda scores: scores,
                                          summary="L1 distance sum |x - y|"))
    yield distance
    DISTANCES.unregister(distance.name)


def test_an_index_searches_by_a_registered_toy_distance(registered_manhattan: Distance,
                                                        tiny_folder: Path, queries: list[str],
                                                        tmp_path: Path) -> None:
    checkpoint = checkpoint_for(tmp_path, "manhattan", images=images_of(tiny_folder))
    with Index.build(checkpoint, tiny_folder, tmp_path / "index", spec=IndexSpec("flat"),
                     **QUIET) as index:
        assert index.info()["distance"] == "manhattan" and index.metric == "L1"
        hits = index.search(queries, k=6)
        exact = brute_force(index, index.embed(queries), "manhattan")
        for row, found in enumerate(hits):
            np.testing.assert_allclose([h.distance for h in found],
                                       exact[row, [h.id for h in found]], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose([h.distance for h in found], np.sort(exact[row])[:6],
                                       rtol=1e-5, atol=1e-5)


# -- folders written before indexes stated their distance (format 1) ---------------------------


def as_format_1(folder: Path, metric: str, index: Index) -> None:
    """Rewrite ``folder`` as lookalike wrote it before: no distance, a FAISS ``metric``
    ("ip": inner products of the unit vectors, or "l2"), vectors built that way."""
    vectors, ids = stored_vectors(index.vectors), stored_ids(index.vectors)
    faiss_index = build_vector_index(vectors, ids, IndexSpec("flat"),
                                     "cosine" if metric == "ip" else "euclidean")
    store_module.write_faiss(faiss_index, folder / "vectors-0.faiss")
    with contextlib.closing(sqlite3.connect(folder / "index.sqlite")) as db, db:
        db.execute("DELETE FROM meta WHERE key = 'distance'")
        db.execute("INSERT INTO meta VALUES ('metric', ?)", (json.dumps(metric),))
        db.execute("UPDATE meta SET value = '1' WHERE key = 'format_version'")


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_a_format_1_folder_opens_as_euclidean(metric: str, indexes: dict[tuple[str, bool], Index],
                                              queries: list[str], tmp_path: Path) -> None:
    current = indexes["euclidean", True]
    folder = Path(shutil.copytree(current.path, tmp_path / "old"))
    as_format_1(folder, metric, current)
    with Index.open(folder) as old:
        assert old.store.meta["format_version"] == 1 and "distance" not in old.store.meta
        assert old.distance == "euclidean"
        assert old.metric == ("INNER_PRODUCT" if metric == "ip" else "L2")
        before, after = current.search(queries, k=5), old.search(queries, k=5)
        for a, b in zip(before, after, strict=True):
            assert [h.id for h in a] == [h.id for h in b]
            # sqrt(2 - 2 cos) in float32 is coarser than sqrt(L2): compare squared
            np.testing.assert_allclose([h.distance ** 2 for h in a], [h.distance ** 2 for h in b],
                                       atol=1e-5)
        old.remove([0])  # and it can still be changed
    with Index.open(folder) as reopened:
        assert len(reopened) == 47 and reopened.distance == "euclidean"


def test_a_folder_of_an_unregistered_distance_is_refused(indexes: dict[tuple[str, bool], Index],
                                                        tmp_path: Path) -> None:
    folder = Path(shutil.copytree(indexes["cosine", True].path, tmp_path / "other"))
    with contextlib.closing(sqlite3.connect(folder / "index.sqlite")) as db, db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'distance'", (json.dumps("hamming"),))
    with pytest.raises(SearchIndexError, match="'hamming', which is not registered") as refused:
        Index.open(folder)
    assert "\n" not in str(refused.value)

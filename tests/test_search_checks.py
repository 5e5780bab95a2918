"""What an index refuses and what it follows: ids no item has (any integer), values out of
range, non-finite embeddings (never written), and changes committed by another handle.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lookalike.errors import CheckpointError, ConfigError, DataError, SearchIndexError
from lookalike.models import embed
from lookalike.search import Index, IndexSpec
from lookalike.search import build as build_module
from lookalike.search.vectors import stored_ids, stored_vectors

from .conftest import fails, images_of, write_class_folder
from .test_search import QUIET, CountingEmbed, folder_state, one_line_error

HUGE = 99999999999999999999  # beyond SQLite's (and numpy's) 64-bit integers


@pytest.fixture(scope="module")
def shared(checkpoint: Path, tiny_folder: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat index of tiny_folder (48 items); tests copy it before changing it."""
    out = tmp_path_factory.mktemp("checks") / "index"
    Index.build(checkpoint, tiny_folder, out, **QUIET).close()
    return out


@pytest.fixture
def folder(shared: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(shared, tmp_path / "index"))


# -- ids that no item has --------------------------------------------------------------------


@pytest.mark.parametrize("item_id", [HUGE, -HUGE, 2**63, -1, 48])
def test_any_integer_that_is_no_id_is_no_such_item(item_id: int, folder: Path) -> None:
    before = folder_state(folder)
    with Index.open(folder) as index:
        message = one_line_error(lambda: index.more_like([0, item_id], k=2), SearchIndexError)
        assert message.startswith(f"no such item: {item_id} ")
        message = one_line_error(lambda: index.remove([1, item_id]), SearchIndexError)
        assert message.startswith(f"no such item: {item_id} ") and "nothing was removed" in message
        assert f"no such item: {item_id}" in one_line_error(lambda: index.image(item_id))
        assert index.records([item_id, 3]).keys() == {3}
        assert index.store.image_bytes(item_id) is None
        assert len(index) == 48
    assert folder_state(folder) == before


def test_random_and_duplicates_refuse_nonsense(shared: Path) -> None:
    with Index.open(shared) as index:
        for n in (0, -2):  # -2 used to mean "all but the last two"
            assert "random items must be >= 1" in one_line_error(
                lambda n=n: index.sample_ids(n), ConfigError)
        one_line_error(lambda: index.sample_ids(3, seed=-1), ConfigError)
        assert len(index.sample_ids(1000, seed=0)) == 48
        for threshold in (math.nan, math.inf, -0.1):
            assert "threshold must be a finite distance >= 0" in one_line_error(
                lambda t=threshold: index.duplicates(t), ConfigError)
        one_line_error(lambda: index.duplicates(0.1, neighbors=0), ConfigError)


def test_kind_options_fit_faiss(shared: Path) -> None:
    assert "hnsw_m must be <= 2147483647" in one_line_error(
        lambda: IndexSpec("hnsw", hnsw_m=2**31), ConfigError)
    assert IndexSpec("hnsw", hnsw_m=2**31 - 1).get("hnsw_m") == 2**31 - 1


# -- non-finite embeddings are never written -------------------------------------------------


class NonFiniteEmbed(CountingEmbed):
    """``embed`` whose rows ``bad`` (positions in the collection) come out NaN or inf."""

    def __init__(self, bad: list[int]) -> None:
        super().__init__()
        self.bad = bad

    def __call__(self, model: Any, dataset: Any, **options: Any) -> np.ndarray:
        out = super().__call__(model, dataset, **options)
        start = getattr(dataset, "start", 0)
        for position in self.bad:
            if start <= position < start + len(out):
                out[position - start, position % out.shape[1]] = \
                    np.nan if position % 2 else np.inf
        return out


def test_a_build_from_a_model_giving_nan_writes_nothing(checkpoint: Path, tiny_folder: Path,
                                                       tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A diverged checkpoint embeds (some) images as NaN: one line naming the checkpoint,
    how many items and the first; no index folder and no partial one."""
    monkeypatch.setattr(build_module, "embed_everywhere", NonFiniteEmbed([7, 8, 30]))
    out = tmp_path / "index"
    error = fails(capsys, ["index", "build", "--checkpoint", str(checkpoint), "--images",
                           str(tiny_folder), "--out", str(out), "--quiet"])
    first = images_of(tiny_folder)[7]
    assert f"{checkpoint} gives NaN or infinite embeddings for 3 of 48 items" in error
    assert f"(the first: {first})" in error and "nothing was written" in error.lower()
    assert sorted(tmp_path.iterdir()) == []


def test_a_nan_chunk_is_not_saved_and_earlier_chunks_are_kept(
        checkpoint: Path, tiny_folder: Path, shared: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module, "CHUNK_ITEMS", 10)
    monkeypatch.setattr(build_module, "embed_everywhere", NonFiniteEmbed([25]))
    out = tmp_path / "index"
    message = one_line_error(lambda: Index.build(checkpoint, tiny_folder, out, **QUIET),
                             CheckpointError)
    assert "for 1 of items 20..29 of 48" in message
    saved = sorted(p.name for p in (tmp_path / "index.partial" / "embeddings").iterdir())
    assert saved == ["0000000000.npy", "0000000010.npy"]
    # a chunk saved with NaN (by an older lookalike) is embedded again, not trusted
    np.save(tmp_path / "index.partial" / "embeddings" / "0000000010.npy",
            np.full((10, 16), np.nan, dtype=np.float32))
    counting = CountingEmbed()
    monkeypatch.setattr(build_module, "embed_everywhere", counting)
    with Index.build(checkpoint, tiny_folder, out, **QUIET) as built, Index.open(shared) as one:
        assert counting.items == 48 - 10
        assert np.isfinite(stored_vectors(built.vectors)).all()
        np.testing.assert_allclose(stored_vectors(built.vectors), stored_vectors(one.vectors),
                                   atol=1e-6)


def test_adding_nan_embeddings_changes_nothing(folder: Path, tiny_folder: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    before = folder_state(folder)
    new = images_of(tiny_folder)[:4]
    with Index.open(folder) as index:
        monkeypatch.setattr(build_module, "embed_everywhere", NonFiniteEmbed([2]))
        message = one_line_error(lambda: index.add(new, **QUIET), CheckpointError)
        assert message.startswith(f"{index.store.model_dir} gives NaN or infinite embeddings "
                                  "for 1 of 4 items")
        assert f"(the first: {new[2]})" in message
        vectors = embed(index.model, _dataset(index, new))
        vectors[3, 0] = np.nan
        message = one_line_error(
            lambda: index.add_vectors(vectors, _collection(new), index.fingerprint), DataError)
        assert message.startswith("1 of the 4 vectors hold NaN") and new[3] in message
        assert len(index) == 48 and index.generation == 0
    assert folder_state(folder) == before


def _collection(paths: list[str]) -> Any:
    from lookalike.search import open_data

    return open_data(paths)


def _dataset(index: Index, paths: list[str]) -> Any:
    from lookalike.data.dataset import ImageDataset

    config = index.model.config
    return ImageDataset(_collection(paths), size=config.input_size,
                        channels=config.in_channels)


# -- an open Index follows changes committed by another handle ----------------------------


def test_a_stale_handle_answers_from_the_newest_generation(folder: Path,
                                                           tiny_folder: Path,
                                                           tmp_path: Path) -> None:
    query = images_of(tiny_folder)[5]
    new = images_of(write_class_folder(tmp_path / "new", classes=1, per_class=2, seed=4))
    with Index.open(folder) as served, Index.open(folder) as writer:
        assert served.search(query, k=3)[0][0].id == 5
        writer.remove([5, 6])
        hits = served.search(query, k=3)[0]  # no refresh() called: the search loads it
        assert len(hits) == 3 and not {5, 6} & {h.id for h in hits}
        assert served.generation == 1 and len(served) == 46
        added = writer.add(new, **QUIET).tolist()
        similar = served.more_like([added[0]], k=2)[0]  # an id this handle never loaded
        assert len(similar) == 2 and added[0] not in {h.id for h in similar}
        assert served.generation == 2
        writer.remove([added[0]])
        assert f"no such item: {added[0]}" in one_line_error(
            lambda: served.more_like([added[0]], k=1), SearchIndexError)
        assert served.refresh() is False  # more_like loaded generation 3 already
        writer.remove([0])
        assert len(served) == 47 and served.refresh() is True and len(served) == 46
        assert 0 not in served.sample_ids(100).tolist()
        assert sorted(stored_ids(served.vectors).tolist()) == served.store.all_ids().tolist()
        # the stale handle's own write, though, is refused rather than lost
        stale = Index.open(folder)
        writer.remove([1])
        assert "changed by another writer" in one_line_error(lambda: stale.remove([2]),
                                                             SearchIndexError)
        stale.close()

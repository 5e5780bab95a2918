"""``lookalike index build|add|remove|info`` and ``lookalike search``, in-process, tiny data."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from lookalike.cli import main
from lookalike.distances import METRICS, pairwise_distance
from lookalike.models import load_checkpoint
from lookalike.search import Index
from lookalike.search.vectors import stored_ids, stored_vectors

from .conftest import fails, images_of, write_class_folder
from .test_search_distances import checkpoint_for, components, threshold_after


def index_build(checkpoint: Path, out: Path, *source: str) -> int:
    return main(["index", "build", "--checkpoint", str(checkpoint), "--out", str(out),
                 "--quiet", *source])


def search_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict]:
    capsys.readouterr()
    assert main(["search", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def index_folder(checkpoint: Path, tiny_folder: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of tiny_folder (3 classes x 16), built by the CLI; read-only."""
    out = tmp_path_factory.mktemp("cli-index") / "index"
    assert index_build(checkpoint, out, "--images", str(tiny_folder)) == 0
    return out


@pytest.fixture(scope="module")
def ids(index_folder: Path) -> dict[str, int]:
    """The indexed files' ids, by path."""
    with Index.open(index_folder) as index:
        records = index.records(index.store.all_ids().tolist())
    return {str(r.path): r.id for r in records.values()}


@pytest.fixture
def index_copy(index_folder: Path, tmp_path: Path) -> Path:
    """A copy of the shared index that a test may change."""
    return Path(shutil.copytree(index_folder, tmp_path / "index"))


# -- index build / info ----------------------------------------------------------------------


def test_index_build_from_an_images_folder(checkpoint: Path, tiny_folder: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "index"
    assert index_build(checkpoint, out, "--images", str(tiny_folder)) == 0
    _, info = load_checkpoint(checkpoint)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"indexed 48 items (flat, euclidean distance, model {info.fingerprint}) in {out}"
    assert not (tmp_path / "index.partial").exists()


def test_index_build_from_data_folder_matches_images(checkpoint: Path, tiny_folder: Path,
                                                     index_folder: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "index"
    assert index_build(checkpoint, out, "--data", str(tiny_folder), "--kind", "hnsw") == 0
    with Index.open(out) as from_data, Index.open(index_folder) as from_images:
        assert from_data.kind == "hnsw" and len(from_data) == 48
        assert from_data.info()["labels"] == from_images.info()["labels"]
        assert from_data.info()["data"] == str(tiny_folder)
        order = np.argsort(stored_ids(from_data.vectors))
        np.testing.assert_allclose(stored_vectors(from_data.vectors)[order],
                                   stored_vectors(from_images.vectors), atol=1e-6)


def test_index_build_from_image_files(checkpoint: Path, tiny_folder: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "index"
    files = images_of(tiny_folder)[:3]
    assert index_build(checkpoint, out, "--images", *files) == 0
    capsys.readouterr()
    assert main(["index", "info", "--index", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["items"] == 3 and info["labels"] == {"null": 3}
    assert main(["index", "info", "--index", str(out)]) == 0
    assert "labels: -; 3 unlabelled" in capsys.readouterr().out


def test_index_build_onto_an_index_needs_overwrite(checkpoint: Path, tiny_folder: Path,
                                                   index_copy: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    files = images_of(tiny_folder)[:4]
    argv = ["index", "build", "--checkpoint", str(checkpoint), "--out", str(index_copy),
            "--quiet", "--images", *files]
    assert "already exists" in fails(capsys, argv)
    with Index.open(index_copy) as index:
        assert len(index) == 48
    assert main([*argv, "--overwrite"]) == 0
    with Index.open(index_copy) as index:
        assert len(index) == 4


def test_index_info_text_and_json(index_folder: Path, checkpoint: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, checkpoint_info = load_checkpoint(checkpoint)
    capsys.readouterr()
    assert main(["index", "info", "--index", str(index_folder)]) == 0
    text = capsys.readouterr().out
    assert "items: 48" in text and f"fingerprint: {checkpoint_info.fingerprint}" in text
    assert "labels: class_0 16, class_1 16, class_2 16" in text
    assert "distance: euclidean" in text and "metric: L2" in text
    assert main(["index", "info", "--index", str(index_folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["items"] == 48 and info["kind"] == "flat" and info["dim"] == 16
    assert info["distance"] == "euclidean" and info["metric"] == "L2"
    assert info["labels"] == {"class_0": 16, "class_1": 16, "class_2": 16}
    assert info["fingerprint"] == checkpoint_info.fingerprint


# -- index add / remove ----------------------------------------------------------------------


def test_index_add_then_remove(index_copy: Path, checkpoint: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    new = write_class_folder(tmp_path / "new", classes=3, per_class=1, seed=9)
    capsys.readouterr()
    assert main(["index", "add", "--index", str(index_copy), "--images", str(new),
                 "--checkpoint", str(checkpoint), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "added 3 items (ids 48..50); the index now holds 51" in out
    assert main(["index", "remove", "--index", str(index_copy), "0", "49"]) == 0
    assert "removed 2 items; the index now holds 49" in capsys.readouterr().out
    with Index.open(index_copy) as index:
        assert index.store.all_ids().tolist() == [*range(1, 48), 48, 50]
        first, removed, last = (row[0] for row in index.search(images_of(new), k=1))
        assert first.id == 48 and first.distance < 1e-3
        assert last.id == 50 and last.distance < 1e-3
        assert removed.id != 49 and removed.distance > 1e-3


def test_index_add_with_another_checkpoint_is_refused(index_copy: Path, other_checkpoint: Path,
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _, other = load_checkpoint(other_checkpoint)
    new = write_class_folder(tmp_path / "new", classes=3, per_class=1, seed=9)
    error = fails(capsys, ["index", "add", "--index", str(index_copy), "--images", str(new),
                           "--checkpoint", str(other_checkpoint), "--quiet"])
    assert other.fingerprint in error
    with Index.open(index_copy) as index:
        assert len(index) == 48 and index.store.meta["generation"] == 0


# -- search ----------------------------------------------------------------------------------


def test_search_prints_a_table_per_query(index_folder: Path, tiny_folder: Path,
                                         ids: dict[str, int],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    queries = [images_of(tiny_folder)[5], images_of(tiny_folder)[40]]
    capsys.readouterr()
    assert main(["search", "--index", str(index_folder), *queries, "-k", "3"]) == 0
    *blocks, unit = capsys.readouterr().out.strip().split("\n\n")
    assert len(blocks) == 2 and unit == "distances: euclidean"  # the model's distance
    for query, block in zip(queries, blocks, strict=True):
        lines = block.splitlines()
        assert lines[0] == f"query: {query}"
        assert lines[1].split() == ["rank", "id", "distance", "label", "path"]
        rows = [line.split() for line in lines[2:]]
        assert [row[0] for row in rows] == ["1", "2", "3"]
        assert int(rows[0][1]) == ids[query] and float(rows[0][2]) < 1e-3
        assert rows[0][3] == Path(query).parent.name and rows[0][4] == query
        distances = [float(row[2]) for row in rows]
        assert distances == sorted(distances)


def test_search_json_has_k_hits_per_query(index_folder: Path, tiny_folder: Path,
                                          ids: dict[str, int],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    queries = images_of(tiny_folder)[::16]
    results = search_json(capsys, "--index", str(index_folder), *queries, "-k", "5")
    assert [r["query"] for r in results] == queries
    assert {r["distance"] for r in results} == {"euclidean"}
    for query, result in zip(queries, results, strict=True):
        hits = result["hits"]
        assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
        assert hits[0]["id"] == ids[query] and hits[0]["path"] == query
        assert set(hits[0]) == {"rank", "id", "distance", "source", "label", "path"}


def test_search_by_id_leaves_the_item_out(index_folder: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    results = search_json(capsys, "--index", str(index_folder), "--id", "0", "--id", "17",
                          "-k", "4")
    with Index.open(index_folder) as index:
        expected = index.more_like([0, 17], k=4)
        sources = index.records([0, 17])
    assert [r["query"] for r in results] == [f"item {i} ({sources[i].source})" for i in (0, 17)]
    for item_id, result, hits in zip((0, 17), results, expected, strict=True):
        assert item_id not in [h["id"] for h in result["hits"]]
        assert [h["id"] for h in result["hits"]] == [h.id for h in hits]


def test_search_random_is_seeded(index_folder: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("--index", str(index_folder), "--random", "3", "-k", "2")
    first = search_json(capsys, *argv, "--seed", "5")
    again = search_json(capsys, *argv, "--seed", "5")
    other = search_json(capsys, *argv, "--seed", "6")
    assert first == again and len(first) == 3
    assert len({r["query"] for r in first}) == 3
    assert [r["query"] for r in other] != [r["query"] for r in first]
    assert all(len(r["hits"]) == 2 for r in first)


def test_search_grid_writes_a_png(index_folder: Path, tiny_folder: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "grid.png"
    capsys.readouterr()
    assert main(["search", "--index", str(index_folder), images_of(tiny_folder)[3],
                 "--id", "30", "-k", "4", "--grid", str(grid)]) == 0
    assert f"grid written to {grid}" in capsys.readouterr().out
    with Image.open(grid) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width > height > 0  # 2 rows of 1 query + 4 results


def test_search_duplicates(checkpoint: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    originals = images_of(write_class_folder(tmp_path / "originals", classes=2, per_class=4))
    shutil.copy(originals[1], tmp_path / "copy_a.png")
    shutil.copy(originals[1], tmp_path / "copy_b.png")
    shutil.copy(originals[6], tmp_path / "copy_c.png")
    copies = [str(tmp_path / f"copy_{c}.png") for c in "abc"]
    out = tmp_path / "index"
    assert index_build(checkpoint, out, "--images", *originals, *copies) == 0
    groups = search_json(capsys, "--index", str(out), "--duplicates", "--threshold", "0.001")
    assert [g["ids"] for g in groups] == [[1, 8, 9], [6, 10]]
    assert groups[0]["sources"] == [originals[1], *copies[:2]]
    capsys.readouterr()
    assert main(["search", "--index", str(out), "--duplicates", "--threshold", "0.001"]) == 0
    text = capsys.readouterr().out
    assert "group 1: 3 items" in text and "group 2: 2 items" in text
    assert text.strip().splitlines()[-1] == "2 groups, 5 items within euclidean distance 0.001"


@pytest.mark.parametrize("distance", METRICS)
def test_duplicates_threshold_is_in_the_models_distance(distance: str, tiny_folder: Path,
                                                        tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    files = images_of(tiny_folder)[::4]  # 12 items: ids 0..11 in this order
    checkpoint = checkpoint_for(tmp_path, distance, images=images_of(tiny_folder))
    out = tmp_path / "index"
    assert index_build(checkpoint, out, "--images", *files) == 0
    capsys.readouterr()
    assert main(["index", "info", "--index", str(out)]) == 0
    assert f"distance: {distance}" in capsys.readouterr().out
    with Index.open(out) as index:
        embeddings = torch.from_numpy(index.embed(files)).double()
    exact = pairwise_distance(embeddings, embeddings, distance).numpy()  # the model's unit
    for rank in (1, 12):
        threshold = threshold_after(exact, rank)
        groups = search_json(capsys, "--index", str(out), "--duplicates", "--threshold",
                             str(threshold), "-k", "11")
        assert [g["ids"] for g in groups] == components(exact, threshold)


def test_search_duplicates_finds_none_without_copies(index_folder: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["search", "--index", str(index_folder), "--duplicates",
                 "--threshold", "0"]) == 0
    assert "no duplicates found" in capsys.readouterr().out


# -- errors: one line, exit status 1 ---------------------------------------------------------


def test_search_errors_are_one_line(index_folder: Path, tiny_folder: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    index = str(index_folder)
    query = images_of(tiny_folder)[0]
    cases = {
        "no such index folder": ["--index", str(tmp_path / "nowhere"), query],
        "k=49": ["--index", index, query, "-k", "49"],
        "corrupt.png": ["--index", index, query, str(corrupt)],
        "missing.png: no such file": ["--index", index, str(tmp_path / "missing.png")],
        "give query images": ["--index", index],
        "no such item: 999": ["--index", index, "--id", "999"],
        "--threshold": ["--index", index, "--duplicates"],
        "no such item: 99999999999999999999": ["--index", index, "--id",
                                               "99999999999999999999"],
        "no such item: -3": ["--index", index, "--id", "-3"],
    }
    for fragment, argv in cases.items():
        assert fragment in fails(capsys, ["search", *argv]), argv


def test_index_errors_are_one_line(index_copy: Path, checkpoint: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    index = str(index_copy)
    for unknown in ("999", "99999999999999999999", "-5"):
        error = fails(capsys, ["index", "remove", "--index", index, "1", unknown])
        assert f"no such item: {unknown} " in error and "nothing was removed" in error
    with Index.open(index_copy) as unchanged:
        assert len(unchanged) == 48 and unchanged.generation == 0
    assert "--images" in fails(capsys, ["index", "build", "--checkpoint", str(checkpoint),
                                        "--out", str(tmp_path / "x"), "--quiet"])
    assert "empty index" in fails(capsys, ["index", "remove", "--index", index,
                                           *map(str, range(48))])
    (index_copy / "vectors-0.faiss").unlink()
    assert "vectors-0.faiss is missing" in fails(capsys, ["index", "info", "--index", index])
    (index_copy / "index.sqlite").unlink()
    assert "index.sqlite is missing" in fails(capsys, ["search", "--index", index, "--id", "1"])


def test_an_index_of_another_format_version_is_refused(index_copy: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with contextlib.closing(sqlite3.connect(index_copy / "index.sqlite")) as db, db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    error = fails(capsys, ["index", "info", "--index", str(index_copy)])
    assert "format 99" in error and "rebuild" in error


# -- numeric options: refused where they are parsed (one line, exit status 2) -----------------


def refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run a command whose options must be refused: exit 2, one line, no traceback."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lookalike: error: argument "), lines
    return lines[0]


COUNT = "an integer in [1, inf)"
SEARCH_OPTIONS = [
    ("-k", "0", COUNT), ("-k", "-1", COUNT), ("-k", "nan", COUNT), ("-k", "2.5", COUNT),
    ("--random", "0", COUNT), ("--random", "-2", COUNT),
    ("--seed", "-1", "an integer in [0, inf)"),
    ("--threshold", "nan", "a number in [0, inf)"),
    ("--threshold", "inf", "a number in [0, inf)"),
    ("--threshold", "-0.5", "a number in [0, inf)"),
    ("--ef-search", "0", "[1, 2147483647]"), ("--ef-search", "2147483648", "[1, 2147483647]"),
    ("--nprobe", "-3", "[1, 2147483647]"),
]


@pytest.mark.parametrize(("option", "value", "accepted"), SEARCH_OPTIONS)
def test_search_options_out_of_range_are_refused(option: str, value: str, accepted: str,
                                                 index_folder: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    error = refused(capsys, ["search", "--index", str(index_folder), "--duplicates",
                             f"{option}={value}"])
    assert f"argument {option}" in error and accepted in error and value in error


BUILD_OPTIONS = [
    ("--batch-size", "0", COUNT), ("--batch-size", "nan", COUNT),
    ("--hnsw-m", "0", "[1, 2147483647]"), ("--ef-construction", "1e3", "[1, 2147483647]"),
    ("--nlist", "-1", "[0, 2147483647]"), ("--nprobe", "0", "[1, 2147483647]"),
]


@pytest.mark.parametrize(("option", "value", "accepted"), BUILD_OPTIONS)
def test_index_options_out_of_range_are_refused(option: str, value: str, accepted: str,
                                                checkpoint: Path, tiny_folder: Path,
                                                tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    error = refused(capsys, ["index", "build", "--checkpoint", str(checkpoint), "--images",
                             str(tiny_folder), "--out", str(tmp_path / "x"),
                             f"{option}={value}"])
    assert f"argument {option}" in error and accepted in error
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()
    if option == "--batch-size":
        error = refused(capsys, ["index", "add", "--index", str(tmp_path / "x"), "--images",
                                 str(tiny_folder), f"{option}={value}"])
        assert f"argument {option}" in error and accepted in error


SERVE_OPTIONS = [
    ("--port", "0", "[1, 65535]"), ("--port", "65536", "[1, 65535]"),
    ("--port", "-80", "[1, 65535]"), ("--port", "nan", "[1, 65535]"),
    ("--max-upload-mb", "0", "(0, 1048576]"), ("--max-upload-mb", "-1", "(0, 1048576]"),
    ("--max-upload-mb", "nan", "(0, 1048576]"), ("--max-upload-mb", "inf", "(0, 1048576]"),
    ("--max-upload-mb", "1e300", "(0, 1048576]"),
    ("--max-pixels", "0", COUNT), ("--max-pixels", "1e6", COUNT),
]


@pytest.mark.parametrize(("option", "value", "accepted"), SERVE_OPTIONS)
def test_serve_options_out_of_range_are_refused(option: str, value: str, accepted: str,
                                                index_folder: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import lookalike.service.server as server

    monkeypatch.setattr(server, "serve", lambda *a, **k: pytest.fail("the server started"))
    error = refused(capsys, ["serve", "--index", str(index_folder), f"{option}={value}"])
    assert f"argument {option}" in error and accepted in error


def test_a_tiny_upload_limit_is_at_least_one_byte(index_folder: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import lookalike.service.server as server

    started: dict[str, Any] = {}
    monkeypatch.setattr(server, "serve", lambda path, **options: started.update(options))
    assert main(["serve", "--index", str(index_folder), "--max-upload-mb", "1e-9",
                 "--port", "65535"]) == 0
    assert started["settings"].max_upload_bytes == 1 and started["port"] == 65535


def test_search_random_and_duplicates_take_only_sane_values(
        index_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13's cases that used to run: --random -2 (every item but two as a query) and
    a NaN threshold ("0 groups"); the smallest accepted values still work."""
    refused(capsys, ["search", "--index", str(index_folder), "--random", "-2"])
    refused(capsys, ["search", "--index", str(index_folder), "--duplicates",
                     "--threshold", "nan"])
    assert len(search_json(capsys, "--index", str(index_folder), "--random", "1",
                           "--seed", "0", "-k", "1")) == 1
    capsys.readouterr()
    assert main(["search", "--index", str(index_folder), "--duplicates",
                 "--threshold", "0"]) == 0

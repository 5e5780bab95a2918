"""Index kinds come from one registry: specs, ``--kind`` choices and flags, and a toy kind
registered by a test that is built, searched, shrunk and reopened like the built-in ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import pytest

from lookalike.cli import build_parser, main
from lookalike.errors import ConfigError
from lookalike.search import Index, IndexKind, IndexSpec, KindOption, register_index_kind
from lookalike.search.kinds import INDEX_KINDS
from lookalike.search.spec import kind_choices

from .conftest import images_of

QUIET: dict[str, Any] = {"progress": False, "log": lambda message: None}


class ScalarQuantized(IndexKind):
    """``sq8``: vectors stored as 8-bit codes (4x less memory), searched exhaustively.

    The toy of docs/extending.md, "An index kind"; training and removal are the defaults.
    """

    name = "sq8"
    summary = "approximate, 8-bit codes"

    def create(self, dim: int, metric: int, n: int, spec: IndexSpec) -> faiss.Index:
        return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, metric)


@pytest.fixture
def sq8() -> Iterator[IndexKind]:
    kind = register_index_kind(ScalarQuantized())
    yield kind
    INDEX_KINDS.unregister(kind.name)


def test_a_registered_toy_kind_builds_searches_and_shrinks(sq8: IndexKind, checkpoint: Path,
                                                           tiny_folder: Path,
                                                           tmp_path: Path) -> None:
    paths = images_of(tiny_folder)
    with Index.build(checkpoint, tiny_folder, tmp_path / "index", spec=IndexSpec("sq8"),
                     **QUIET) as index:
        assert index.kind == "sq8" and index.info()["spec"] == {"kind": "sq8"}
        assert isinstance(faiss.downcast_index(index.vectors.index), faiss.IndexScalarQuantizer)
        own = {record.path: record.id for record in index.records(range(48)).values()}
        for path, hits in zip(paths[::6], index.search(paths[::6], k=3), strict=True):
            assert hits[0].id == own[path] and hits[0].distance < 1e-2  # 8-bit rounding
        assert index.remove([own[paths[0]], own[paths[1]]]) == 2
        assert len(index) == 46
    with Index.open(tmp_path / "index") as reopened:
        assert reopened.kind == "sq8" and len(reopened) == 46
        found = {hit.id for row in reopened.search(paths[:2], k=5) for hit in row}
        assert not found & {own[paths[0]], own[paths[1]]}


def test_the_command_line_takes_kinds_from_the_registry(sq8: IndexKind, checkpoint: Path,
                                                        tiny_folder: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    assert kind_choices() == ("auto", "flat", "hnsw", "ivf", "sq8")
    out = tmp_path / "index"
    assert main(["index", "build", "--checkpoint", str(checkpoint), "--out", str(out),
                 "--images", str(tiny_folder), "--kind", "sq8", "--quiet"]) == 0
    assert "(sq8, euclidean distance," in capsys.readouterr().out
    assert main(["index", "info", "--index", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "sq8"


def test_kind_options_become_flags_and_spec_values() -> None:
    build = build_parser().parse_args(["index", "build", "--checkpoint", "c", "--out", "o",
                                       "--kind", "hnsw", "--hnsw-m", "12", "--nprobe", "3"])
    assert (build.kind, build.hnsw_m, build.nprobe, build.ef_search) == ("hnsw", 12, 3, 64)
    search = build_parser().parse_args(["search", "--index", "i", "--ef-search", "200"])
    assert search.ef_search == 200 and search.nprobe is None
    assert not hasattr(search, "hnsw_m")  # build-time options are not search flags
    spec = IndexSpec("hnsw", hnsw_m=12, nprobe=3).resolved(10)
    assert spec.to_dict() == {"kind": "hnsw", "hnsw_m": 12, "ef_construction": 80,
                              "ef_search": 64}  # only the kind's own options are kept
    assert IndexSpec("auto").resolved(10).kind == "flat"
    assert IndexSpec.from_dict({"kind": "ivf", "hnsw_m": 32, "nlist": 0, "nprobe": 16}) == \
        IndexSpec("ivf", nlist=0, nprobe=16)  # a format-1 spec held every kind's options


def test_bad_kinds_and_options_are_one_line_errors() -> None:
    for make, fragment in ((lambda: IndexSpec("annoy"), "unknown index kind 'annoy'"),
                           (lambda: IndexSpec("flat", nprob=3), "unknown index option 'nprob'"),
                           (lambda: IndexSpec("ivf", nprobe=0), "nprobe must be >= 1"),
                           (lambda: IndexSpec("ivf", nlist=1.5), "nlist must be an integer")):
        with pytest.raises(ConfigError, match=fragment) as raised:
            make()
        assert "\n" not in str(raised.value)


def test_a_kind_cannot_redefine_another_kinds_option() -> None:
    class Clashing(ScalarQuantized):
        name = "clash"
        options = (KindOption("nprobe", 1, "not IVF's nprobe"),)

    with pytest.raises(ConfigError, match="option 'nprobe' is already defined"):
        register_index_kind(Clashing())
    assert "clash" not in INDEX_KINDS

    class Taken(ScalarQuantized):
        name = "flat"

    with pytest.raises(ConfigError, match="index kind 'flat' is already registered"):
        register_index_kind(Taken())

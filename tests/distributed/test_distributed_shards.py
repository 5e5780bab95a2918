"""Work split across gloo processes gives one process's answer exactly: embeddings for
evaluation and pool mining (``models/sharded_embed.py``) and index building
(``search/build.py``), including a build that resumes from chunks already saved."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lookalike.search.build as build
from lookalike.search import Index
from tests.conftest import save_tiny_checkpoint
from tests.distributed.workers import index_build_job, index_contents, run_ranks, shard_job

TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny", seed=5)


def assert_same_index(built: dict[str, object], alone: dict[str, object]) -> None:
    assert built.keys() == alone.keys()
    for key, value in alone.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(built[key], value, err_msg=key)  # bit for bit
        else:
            assert built[key] == value, key


def test_evaluation_and_mining_embeddings_equal_one_process(tiny_folder: Path, tmp_path: Path,
                                                            checkpoint: Path) -> None:
    alone = shard_job(0, 1, str(tiny_folder), str(checkpoint))
    ranks = run_ranks(shard_job, 2, tmp_path, str(tiny_folder), str(checkpoint))
    for result in ranks:  # every rank ends with the whole, identical answer
        for key, value in alone.items():
            np.testing.assert_array_equal(result[key], value, err_msg=key)


def test_index_built_by_two_processes_equals_one(tiny_folder: Path, tmp_path: Path,
                                                 checkpoint: Path, monkeypatch) -> None:
    monkeypatch.setattr(build, "CHUNK_ITEMS", 16)  # 48 items: 3 chunks, as in the ranks
    Index.write(checkpoint, str(tiny_folder), tmp_path / "alone", batch_size=5,
                progress=False, log=lambda _: None)
    alone = index_contents(str(tmp_path / "alone"))
    assert len(alone["ids"]) == 48
    ranks = run_ranks(index_build_job, 2, tmp_path, str(tiny_folder), str(checkpoint),
                      str(tmp_path / "two"), 16,
                      fresh=[tmp_path / "two", build.partial_folder(tmp_path / "two")])
    assert not any(line.startswith("resuming") for line in ranks[0].pop("log"))
    assert_same_index(ranks[0], alone)


def test_two_processes_resume_an_interrupted_build(tiny_folder: Path, tmp_path: Path,
                                                   checkpoint: Path, monkeypatch) -> None:
    """A build killed after its first chunks: two processes embed only what is missing."""
    monkeypatch.setattr(build, "CHUNK_ITEMS", 16)
    out = tmp_path / "index"
    Index.write(checkpoint, str(tiny_folder), out, batch_size=5, progress=False,
                log=lambda _: None)
    alone = index_contents(str(out))
    shutil.rmtree(out)
    work = build.partial_folder(out)  # what a kill during the third chunk leaves behind
    build.embed_collection(*_model_and_collection(checkpoint, tiny_folder), work,
                           batch_size=5, progress=False, fingerprint=alone["fingerprint"],
                           model_name=str(checkpoint))
    saved = sorted((work / "embeddings").glob("*.npy"))
    assert len(saved) == 3
    saved[2].unlink()
    ranks = run_ranks(index_build_job, 2, tmp_path, str(tiny_folder), str(checkpoint),
                      str(out), 16)
    assert any(line.startswith(f"resuming the unfinished build in {work} (2 chunks")
               for line in ranks[0].pop("log"))
    assert_same_index(ranks[0], alone)
    assert not work.exists()


def _model_and_collection(checkpoint: Path, folder: Path) -> tuple[object, object]:
    from lookalike.data import open_collection
    from lookalike.models import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    return model, open_collection(str(folder))


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")
def test_torchrun_index_build_equals_one_process(tiny_folder: Path, tmp_path: Path,
                                                 checkpoint: Path) -> None:
    from lookalike.cli import main

    assert main(["index", "build", "--checkpoint", str(checkpoint), "--images",
                 str(tiny_folder), "--out", str(tmp_path / "alone"), "--batch-size", "7",
                 "--quiet"]) == 0
    done = subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc-per-node=2", "-m", "lookalike", "index",
         "build", "--checkpoint", str(checkpoint), "--images", str(tiny_folder), "--out",
         str(tmp_path / "two"), "--batch-size", "7", "--quiet"],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("indexed 48 items") == 1  # the main process reports, once
    assert "by 2 processes" in done.stdout
    assert_same_index(index_contents(str(tmp_path / "two")),
                      index_contents(str(tmp_path / "alone")))

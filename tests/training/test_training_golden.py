"""The rebuilt training path gives the same batches and results as the code before it.

golden_runs.json was recorded with the training code before the fit-loop rebuild
(``python tests/training/golden.py record``): per strategy, every epoch's loss, triplet
statistics and validation metrics, and the sums of the final weights. The same command
lines must reproduce them up to float rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.golden import RUNS, run_all

GOLDEN = json.loads((Path(__file__).parent / "golden_runs.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def results(tiny_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_all(tiny_folder, tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("name", list(RUNS))
def test_same_run_as_before_the_rebuild(results: dict, name: str) -> None:
    for field, expected in GOLDEN[name].items():
        assert results[name][field] == pytest.approx(expected, rel=1e-5, abs=1e-6), field

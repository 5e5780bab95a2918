"""Record or check tiny training runs through the command line, so a refactor of the
training path can prove it gives the same batches and the same results as before.

    python tests/training/golden.py record OUT.json   # with the code before the change
    pytest tests/training/test_training_golden.py     # compares the code now against it
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

RUNS: dict[str, list[str]] = {
    "semi-hard": ["--mining", "semi-hard"],
    "batch-hard": ["--mining", "batch-hard", "--lr-schedule", "none"],
    "batch-all": ["--mining", "batch-all", "--soft-margin"],
    "offline": ["--mining", "offline"],
    "hybrid": ["--mining", "hybrid", "--refresh-every", "1"],
    "offline-hard": ["--mining", "offline-hard"],
    "contrastive": ["--loss", "contrastive", "--pair-ratio", "1:2"],
    "frozen": ["--mining", "batch-hard", "--freeze-backbone-epochs", "1",
               "--backbone-lr-scale", "0.1", "--weight-decay", "0.01"],
}
COMMON = ["--epochs", "3", "-P", "3", "-K", "4", "--batches-per-epoch", "3",
          "--embedding-dim", "8", "--val-fraction", "0.25", "--threads", "1", "--quiet",
          "--seed", "3"]
FIELDS = ("train_loss", "fraction_positive", "mean_positive_distance",
          "mean_negative_distance", "val_map_at_r", "val_precision_at_1")


def run_all(data: Path, work: Path) -> dict[str, dict[str, list[float]]]:
    """Train every run in RUNS on ``data``; per run, each metric's value per epoch and the
    sum of the final weights (a cheap fingerprint of every tensor)."""
    import torch
    from safetensors.torch import load_file

    from lookalike.cli import main

    results: dict[str, dict[str, list[float]]] = {}
    for name, flags in RUNS.items():
        out = work / name
        assert main(["train", "--data", str(data), "--out", str(out), *COMMON, *flags]) == 0
        lines = (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines]
        weights = load_file(str(out / "last" / "model.safetensors"))
        results[name] = {field: [float(r[field]) for r in records] for field in FIELDS}
        results[name]["weight_sums"] = sorted(
            float(t.double().sum()) for t in weights.values() if t.dtype != torch.int64)
    return results


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from conftest import write_class_folder

    with tempfile.TemporaryDirectory() as tmp:
        data = write_class_folder(Path(tmp) / "images")
        results = run_all(data, Path(tmp) / "runs")
    Path(sys.argv[2]).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__" and sys.argv[1:2] == ["record"]:
    main()

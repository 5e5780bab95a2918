"""Which hybrid settings work, on a small proxy: the tuning behind the hybrid defaults.

Each variant trains the default small CNN on the first 15 000 Fashion-MNIST training images
(seed 0), validating on the first 3 000 test images after every epoch, and reports MAP@R
after epoch 4 (or 10), the mean d(a,p) / d(a,n) of the last epoch (a collapse shows as
both near 0) and the training seconds. Every hybrid option is spelled out, so the table
does not change when the defaults do.

    python bench/hybrid_variants.py                  # all variants, about 15 minutes
    python bench/hybrid_variants.py --only semi-hard hybrid-sh-20/5

Writes bench/results/hybrid_variants.json and prints a table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from lookalike.files import write_json
from lookalike.training.config import TrainConfig
from lookalike.training.trainer import train

PROXY = TrainConfig.from_options(train_limit=15_000, val_split="test", val_limit=3_000,
                                 epochs=4, seed=0)
HYBRID = {"mining": "hybrid", "warmup_epochs": 1, "refresh_every": 1, "inject_negatives": True,
          "hard_positives": 5, "hard_negatives": 5, "skip_hardest": 0}


def hybrid(selection: str, warmup: str, bands: tuple[float, float], **more: Any) -> dict:
    return {**HYBRID, "hybrid_selection": selection, "warmup_selection": warmup,
            "positive_band": bands[0], "negative_band": bands[1], **more}


VARIANTS: dict[str, dict[str, Any]] = {
    "batch-all": {"mining": "batch-all"},
    "semi-hard": {"mining": "semi-hard"},
    "hybrid-bh-none": hybrid("batch-hard", "batch-all", (0.0, 0.0)),
    "hybrid-bh-5/2": hybrid("batch-hard", "batch-all", (0.05, 0.02)),
    "hybrid-ba-none": hybrid("batch-all", "batch-all", (0.0, 0.0)),
    "hybrid-ba-none-no-neg": hybrid("batch-all", "batch-all", (0.0, 0.0), inject_negatives=False),
    "hybrid-ba-5/2": hybrid("batch-all", "batch-all", (0.05, 0.02)),
    "hybrid-ba-20/5": hybrid("batch-all", "batch-all", (0.2, 0.05)),
    "hybrid-ba-50/20": hybrid("batch-all", "batch-all", (0.5, 0.2)),
    "hybrid-sh-none": hybrid("semi-hard", "semi-hard", (0.0, 0.0)),
    "hybrid-sh-5/2": hybrid("semi-hard", "semi-hard", (0.05, 0.02)),
    "hybrid-sh-20/5": hybrid("semi-hard", "semi-hard", (0.2, 0.05)),
    "hybrid-sh-20/5-no-neg": hybrid("semi-hard", "semi-hard", (0.2, 0.05), inject_negatives=False),
    "hybrid-sh-50/20": hybrid("semi-hard", "semi-hard", (0.5, 0.2)),
    "10 epochs: semi-hard": {"mining": "semi-hard", "epochs": 10},
    "10 epochs: hybrid-sh-20/5, refresh 1": hybrid("semi-hard", "semi-hard", (0.2, 0.05),
                                                     epochs=10),
    "10 epochs: hybrid-sh-20/5, refresh 3": hybrid("semi-hard", "semi-hard", (0.2, 0.05),
                                                     epochs=10, refresh_every=3),
    "10 epochs: hybrid-sh-20/5, never": hybrid("semi-hard", "semi-hard", (0.2, 0.05),
                                                 epochs=10, refresh_every=0),
    "10 epochs: hybrid-sh-5/1, refresh 3": hybrid("semi-hard", "semi-hard", (0.05, 0.01),
                                                    epochs=10, refresh_every=3),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), metavar="VARIANT")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default="runs/bench-hybrid-variants")
    parser.add_argument("--out", type=Path, default=Path("bench/results/hybrid_variants.json"))
    args = parser.parse_args(argv)
    rows = []
    print("| variant | MAP@R per epoch | final d(a,p) / d(a,n) | train s (mining s) |")
    print("|---|---|---|---|")
    for name in args.only or VARIANTS:
        out = Path(args.work) / name.replace(" ", "_").replace(":", "").replace("/", "-")
        shutil.rmtree(out, ignore_errors=True)
        config = PROXY.with_options(threads=args.threads, **VARIANTS[name]).validate()
        records = train(config, out, show_progress=False, log=lambda line: None).records
        last = records[-1]
        rows.append({"variant": name, "config": VARIANTS[name], "records": records})
        curve = " ".join(f"{r['val_map_at_r']:.3f}" for r in records)
        mining = sum(r["refresh_seconds"] for r in records)
        print(f"| {name} | {curve} | {last['mean_positive_distance']:.2f} / "
              f"{last['mean_negative_distance']:.2f} | {last['seconds']:.0f} ({mining:.0f}) |",
              flush=True)
    write_json(args.out, {"proxy": PROXY.to_dict(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())

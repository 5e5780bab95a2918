"""Compare mining strategies on Fashion-MNIST: MAP@R and P@1 per epoch, against epochs and time.

Every strategy trains the same default small CNN with the same epochs, batch size (P x K
images) and optimiser, for each seed; after every epoch the model is evaluated on the
published test set (leave-one-out retrieval over its 10 000 images). Wall time is the
training time including any mining, excluding the per-epoch evaluation.

    python bench/strategies.py                       # all strategies, 2 seeds, 10 epochs
    python bench/strategies.py --epochs 3 --train-limit 10000 --strategies batch-all offline
    python bench/strategies.py --epochs 5 --strategies semi-hard hybrid --suffix " (5 epochs)" \
        --append                                     # shorter schedules, added to the table

Writes bench/results/strategies.json and bench/results/strategies.png and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

import torch
from machine import git_commit, machine, versions  # bench/machine.py: on sys.path

from lookalike.files import write_json
from lookalike.mining.online import online_selections
from lookalike.training.config import TrainConfig
from lookalike.training.strategy import mining_choices
from lookalike.training.trainer import train
from lookalike.viz import save_figure
from lookalike.viz.strategies import plot_metric_curves


def first_reaching(records: list[dict], target: float, key: str = "val_map_at_r") -> dict | None:
    """The first epoch record whose metric reaches ``target`` (None if none does)."""
    return next((r for r in records if r[key] >= target), None)


def run(args: argparse.Namespace) -> dict:
    base = TrainConfig.from_options(source=args.data, epochs=args.epochs, val_split="test",
                                    train_limit=args.train_limit, threads=args.threads)
    runs: dict[str, dict[int, list[dict]]] = {}
    work = Path(args.work)
    for strategy in args.strategies:
        for seed in args.seeds:
            name = f"{strategy}{args.suffix}"
            out = work / f"{name}-seed{seed}".replace(" ", "-")
            shutil.rmtree(out, ignore_errors=True)
            print(f"--- {name}, seed {seed}", file=sys.stderr)
            config = base.with_options(mining=strategy, seed=seed)
            result = train(config, out, show_progress=False,
                           log=lambda line: print("   ", line, file=sys.stderr))
            runs.setdefault(name, {})[seed] = result.records
    return {"config": {**base.to_dict(), "seeds": args.seeds, "torch_threads":
                       torch.get_num_threads()}, "runs": runs}


def summarise(results: dict, target: float | None) -> list[dict]:
    """One row per strategy: final metrics, and epochs and seconds to the target MAP@R.

    The default target is the best *online* strategy's final MAP@R (mean over seeds): the
    bar the pooled strategies must reach sooner. Per-seed lists keep the spread visible.
    """
    runs = results["runs"]
    finals = {s: statistics.mean(r[-1]["val_map_at_r"] for r in seeds.values())
              for s, seeds in runs.items()}
    online = {s: v for s, v in finals.items() if s in online_selections()} or finals
    reference = max(online, key=online.get)
    target = target if target is not None else online[reference]
    rows = []
    for strategy, seeds in runs.items():
        records = list(seeds.values())
        reached = [first_reaching(r, target) for r in records]
        last = [r[-1] for r in records]
        rows.append({
            "strategy": strategy,
            "map_at_r": statistics.mean(x["val_map_at_r"] for x in last),
            "map_at_r_seeds": [round(x["val_map_at_r"], 4) for x in last],
            "precision_at_1": statistics.mean(x["val_precision_at_1"] for x in last),
            "images_per_second": statistics.mean(
                statistics.mean(e["images_per_second"] for e in r) for r in records),
            "seconds": statistics.mean(x["seconds"] for x in last),
            "refresh_seconds": statistics.mean(
                sum(e.get("refresh_seconds", 0.0) for e in r) for r in records),
            "final_positive_distance": statistics.mean(
                x["mean_positive_distance"] for x in last),
            "final_negative_distance": statistics.mean(
                x["mean_negative_distance"] for x in last),
            "reference": reference,
            "target_map_at_r": round(target, 4),
            "epochs_to_target": [x["epoch"] if x else None for x in reached],
            "seconds_to_target": [round(x["seconds"], 1) if x else None for x in reached],
        })
    return rows


def print_table(rows: list[dict]) -> None:
    header = ("strategy", "test MAP@R (per seed)", "test P@1", "train s (mining incl.)",
              "of which mining s", "final d(a,p) / d(a,n)", "epochs to target",
              "s to target")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        seeds = ", ".join(map(str, row["map_at_r_seeds"]))
        print(f"| {row['strategy']} | {row['map_at_r']:.4f} ({seeds})"
              f" | {row['precision_at_1']:.4f} | {row['seconds']:.0f}"
              f" | {row['refresh_seconds']:.0f}"
              f" | {row['final_positive_distance']:.2f} / {row['final_negative_distance']:.2f}"
              f" | {row['epochs_to_target']} | {row['seconds_to_target']} |")
    print(f"\ntarget MAP@R = {rows[0]['target_map_at_r']} "
          f"(final MAP@R of {rows[0]['reference']}, the best online strategy)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", nargs="+",
                        default=[s for s in mining_choices() if s != "semi-hard-all"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--target", type=float, default=None,
                        help="MAP@R to time (default: the best online strategy's final MAP@R)")
    parser.add_argument("--work", default="runs/bench-strategies")
    parser.add_argument("--out", default="bench/results/strategies")
    parser.add_argument("--summarise-only", action="store_true",
                        help="re-read OUT.json and redo the table and figure")
    parser.add_argument("--suffix", default="",
                        help="appended to the strategy names, e.g. ' (5 epochs)' with --epochs 5")
    parser.add_argument("--append", action="store_true",
                        help="add these strategies' runs to the existing OUT.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.summarise_only:
        results = json.loads(out.with_suffix(".json").read_text())
    else:
        results = run(args)
        previous = out.with_suffix(".json")
        if args.append and previous.exists():
            merged = json.loads(previous.read_text())
            merged["runs"].update(results["runs"])
            results = merged
    results["summary"] = summarise(results, args.target)
    if not args.summarise_only:
        results["git_commit"], results["machine"] = git_commit(), machine(versions(["torch"]))
    write_json(out.with_suffix(".json"), results)
    curves = {s: [[(r["epoch"], r["seconds"], r["val_map_at_r"]) for r in records]
                  for records in seeds.values()] for s, seeds in results["runs"].items()}
    save_figure(plot_metric_curves(curves, "test MAP@R"), out.with_suffix(".png"))
    print_table(results["summary"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Unseen classes of a many-class collection: training recipes against the frozen features.

The collection is built by ``bench/build_icon_dataset.py``: the same freedesktop icon name
drawn by different Debian icon themes (class = icon name, items = the themes' drawings):
1,147 classes, 7,305 images. Unseen-class protocol: the first half of the classes (574,
3,672 images) trains, the other half is searched, leave-one-out; no test class is seen in
training.

References, all in this one run: the frozen ImageNet features (pooled, L2-normalised, no
training) of EfficientNet-Lite0, Lite1 and Lite2 at ``--input-size``, and of Lite0 at 96 px
(the reference the issue quotes). Then every recipe in ``--recipes`` for every seed in
``--seeds`` (the seed sets the head's initial weights, the batches and the augmentation):

- ``default``: ``lookalike train --data DATA --split classes --backbone efficientnet-lite0``
  and nothing else: the recipe of lookalike/training/recipe.py;
- ``hybrid-classes`` / ``hybrid-items``: the default with hybrid mining (pools from the
  pretrained Lite0 at the start, refreshed with the model in training), batches of
  neighbouring classes or of anchors plus their injected items (docs/design.md 2.4);
- ``head-only``: the backbone frozen all run, its features cached for 8 views per image,
  only the 128-d head trains;
- ``default-short`` / ``hybrid-classes-short``: the same two at half the budget (5 epochs),
  to tell whether hybrid reaches the default's final MAP@R in half its time because of
  its batches or only because a shorter cosine schedule ends sooner;
- ``previous``: the README's photo recipe before the recipe existed (frozen first epoch,
  backbone lr x 0.1, hybrid mined by Lite0, P = 16 x K = 6 at 96 px, 4 epochs).

Each recipe is given about the same wall-clock budget through its epochs (``RECIPES``
below; hybrid's mining is inside the budget) and measured with its *last* checkpoint on
all unseen images; the per-epoch validation on ``--val-limit`` unseen images gives the
curve of MAP@R against training seconds (mining included) used for the time-to-target
comparison. Images are decoded once (``--cache-images``), so the timings measure the model.

    python bench/build_icon_dataset.py                 # once: data/icons (about 3 minutes)
    python bench/photos.py                             # default + hybrid-classes, 3 seeds: 47 min
    python bench/photos.py --recipes default default-short hybrid-classes-short \
        --out bench/results/photos-short.json         # 3 seeds: about 60 min
    python bench/photos.py --recipes default --seeds 0 --epochs 1 --out /tmp/photos.json

Prints a markdown table and writes bench/results/photos.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from machine import RunInfo, git_commit, machine, versions  # bench/machine.py: on sys.path

from lookalike.data import ImageCollection, ImageDataset, open_seen_unseen
from lookalike.data.pipeline import cache_resized
from lookalike.evaluation import evaluate_embeddings
from lookalike.files import write_json
from lookalike.mining.model import load_mining_model
from lookalike.models import embed, load_checkpoint
from lookalike.training.config import TrainConfig
from lookalike.training.recipe import with_recipe
from lookalike.training.trainer import train

# name -> options on top of the default recipe; epochs chosen so that each takes about the
# default's wall-clock time on the 2-core build machine (the table reports the seconds)
HYBRID = {"mining": "hybrid", "mining_model": "efficientnet-lite0", "mining_input_size": 128,
          "warmup_epochs": 0}
RECIPES: dict[str, dict[str, Any]] = {
    "default": {},
    # one epoch less than the default's 11 pays for the mining (about 50 s on 2 cores)
    "hybrid-classes": {**HYBRID, "hybrid_batches": "classes", "refresh_every": 4, "epochs": 10},
    "hybrid-items": {**HYBRID, "hybrid_batches": "items", "refresh_every": 4, "epochs": 10},
    # half the budget: does hybrid reach the default's final MAP@R in half its time, and is
    # that the hybrid batches or only the shorter cosine schedule (the default, 5 epochs)?
    "default-short": {"epochs": 5},
    "hybrid-classes-short": {**HYBRID, "hybrid_batches": "classes", "refresh_every": 2,
                             "epochs": 5},
    "head-only": {"freeze_backbone_epochs": 40, "epochs": 40, "feature_cache": True,
                  "cached_views": 8},
    "previous": {"input_size": 96, "embedding_dim": 128, "freeze_backbone_epochs": 1,
                 "backbone_lr_scale": 0.1, "mining": "hybrid",
                 "mining_model": "efficientnet-lite0", "mining_input_size": 96,
                 "classes_per_batch": 16, "items_per_class": 6, "flip": False,
                 "epochs": 4, "warmup_epochs": 0, "augment": "digits", "crop_padding": 6},
}


def unseen_metrics(model: torch.nn.Module, unseen: ImageCollection, input_size: int,
                   cache: Path) -> tuple[dict, float]:
    """Retrieval metrics on all unseen images, and embedding images/s."""
    cached = cache_resized(unseen, input_size, 3, cache, workers=2, progress=False)
    dataset = ImageDataset(cached, channels=3)
    started = time.perf_counter()
    embeddings = embed(model, dataset, batch_size=128, progress=False)
    seconds = time.perf_counter() - started
    return evaluate_embeddings(embeddings, cached.labels).to_dict(), len(dataset) / seconds


def recipe_options(name: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """The flat training options of recipe ``name``: what the command line would give."""
    given = {"source": args.data, "split": "classes", "backbone": "efficientnet-lite0",
             **RECIPES[name]}
    if args.epochs is not None:  # a quick check of the script, not a measurement
        given.update(epochs=args.epochs, freeze_backbone_epochs=min(
            args.epochs, given.get("freeze_backbone_epochs", 0)))
    options = with_recipe(given, log=lambda line: None)
    # the bench's own settings: cached pixels, a validation subset for the curve, the seed
    options.update(cache_images=True, workers=2, val_limit=args.val_limit,
                   threads=args.threads, seed=seed)
    return options


def train_recipe(name: str, seed: int, args: argparse.Namespace,
                 unseen: ImageCollection) -> dict:
    """Train recipe ``name`` with ``seed``; its final unseen metrics and its curve."""
    config = TrainConfig.from_options(**recipe_options(name, args, seed)).validate()
    run_dir = Path(args.work) / f"{name}-seed{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    started = time.perf_counter()
    result = train(config, run_dir, show_progress=not args.quiet, log=print)
    wall = time.perf_counter() - started
    records = result.records
    model, _ = load_checkpoint(result.run.last)
    metrics, embed_rate = unseen_metrics(model, unseen, config.model.input_size,
                                         Path(args.work) / "cache")
    print(f"{name} seed {seed}: MAP@R {metrics['map_at_r']:.4f} "
          f"P@1 {metrics['precision_at_1']:.4f} in {records[-1]['seconds']:.0f} s")
    return {
        "recipe": name, "seed": seed, "metrics": metrics,
        "train_seconds": records[-1]["seconds"],  # training + mining, validation excluded
        "mining_seconds": sum(r.get("refresh_seconds", 0.0) for r in records),
        "wall_seconds": wall, "embed_images_per_second": embed_rate,
        "curve": [{"epoch": r["epoch"], "seconds": r["seconds"],
                   "val_map_at_r": r["val_map_at_r"], "val_precision_at_1": r["val_precision_at_1"]}
                  for r in records],
        "config": config.to_dict(),
    }


def seconds_to_reach(curve: list[dict], target: float) -> float | None:
    """Training seconds at the first epoch whose validation MAP@R reaches ``target``."""
    for point in curve:
        if point["val_map_at_r"] >= target:
            return float(point["seconds"])
    return None


def summarise(runs: list[dict]) -> dict:
    """Mean and min-max over seeds of the final metrics and seconds."""
    def spread(values: list[float]) -> dict:
        return {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}

    return {"seeds": [r["seed"] for r in runs],
            "map_at_r": spread([r["metrics"]["map_at_r"] for r in runs]),
            "precision_at_1": spread([r["metrics"]["precision_at_1"] for r in runs]),
            "r_precision": spread([r["metrics"]["r_precision"] for r in runs]),
            "train_seconds": spread([r["train_seconds"] for r in runs]),
            "mining_seconds": spread([r["mining_seconds"] for r in runs]),
            "final_val_map_at_r": spread([r["curve"][-1]["val_map_at_r"] for r in runs])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/icons")
    parser.add_argument("--recipes", nargs="+", default=["default", "hybrid-classes"],
                        choices=sorted(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--input-size", type=int, default=128,
                        help="input size of the frozen references")
    parser.add_argument("--val-limit", type=int, default=600,
                        help="unseen images validated on after each epoch (the curve)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override every recipe's epochs (a quick check of the script)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default="runs/bench-photos")
    parser.add_argument("--out", default="bench/results/photos.json")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not Path(args.data).is_dir():
        raise SystemExit(f"{args.data}: run bench/build_icon_dataset.py first")
    info = RunInfo()
    seen, unseen = open_seen_unseen(args.data, progress=False)
    dataset_info: dict[str, Any] = {
        "data": args.data, "seen_classes": int((seen.class_counts() > 0).sum()),
        "seen_items": len(seen), "unseen_classes": int((unseen.class_counts() > 0).sum()),
        "unseen_items": len(unseen)}
    description = Path(args.data) / "dataset.json"
    if description.is_file():
        dataset_info["packages"] = json.loads(description.read_text()).get("packages")
    print(f"seen: {dataset_info['seen_classes']} classes, {len(seen)} items; unseen: "
          f"{dataset_info['unseen_classes']} classes, {len(unseen)} items")

    frozen = []
    for backbone, size in [("efficientnet-lite0", 96), ("efficientnet-lite0", args.input_size),
                           ("efficientnet-lite1", args.input_size),
                           ("efficientnet-lite2", args.input_size)]:
        model = load_mining_model(backbone, in_channels=3, input_size=size)
        metrics, rate = unseen_metrics(model, unseen, size, Path(args.work) / "cache")
        frozen.append({"backbone": backbone, "input_size": size, "metrics": metrics,
                       "embed_images_per_second": rate})
        print(f"frozen {backbone} {size}px: MAP@R {metrics['map_at_r']:.4f} "
              f"P@1 {metrics['precision_at_1']:.4f}")
    runs = [train_recipe(name, seed, args, unseen)
            for name in args.recipes for seed in args.seeds]
    summary = {name: summarise([r for r in runs if r["recipe"] == name])
               for name in args.recipes}
    # time to reach the best online recipe's final validation MAP@R (mean over seeds)
    if "default" in summary:
        target = summary["default"]["final_val_map_at_r"]["mean"]
        for name in args.recipes:
            reached = [seconds_to_reach(r["curve"], target) for r in runs
                       if r["recipe"] == name]
            summary[name]["seconds_to_default_final_val"] = reached

    def cell(stats: dict) -> str:
        return f"{stats['mean']:.4f} ({stats['min']:.4f}-{stats['max']:.4f})"

    lite0 = next(f for f in frozen if f["input_size"] == 96)["metrics"]
    table = ["| model | unseen MAP@R (min-max) | unseen P@1 (min-max) | x frozen Lite0 96 px "
             "MAP@R | train s (of which mining) |", "|---|---|---|---|---|"]
    for f in frozen:
        m = f["metrics"]
        table.append(f"| frozen {f['backbone']} {f['input_size']} px | {m['map_at_r']:.4f} | "
                     f"{m['precision_at_1']:.4f} | {m['map_at_r'] / lite0['map_at_r']:.2f} | 0 |")
    for name in args.recipes:
        s = summary[name]
        table.append(f"| {name} ({len(s['seeds'])} seeds) | {cell(s['map_at_r'])} | "
                     f"{cell(s['precision_at_1'])} | "
                     f"{s['map_at_r']['mean'] / lite0['map_at_r']:.2f} | "
                     f"{s['train_seconds']['mean']:.0f} ({s['mining_seconds']['mean']:.0f}) |")
    print("\n".join(table))
    write_json(args.out, {
        "git_commit": git_commit(), "machine": machine(versions(["torch"])),
        "run": info.info(info.seconds()), "dataset": dataset_info, "args": vars(args),
        "recipes": {name: RECIPES[name] for name in args.recipes}, "frozen": frozen,
        "runs": runs, "summary": summary, "table": table})
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()

"""Real photos, unseen classes: pretrained features vs fine-tuning with batch-hard vs hybrid.

The collection is built by ``bench/build_icon_dataset.py``: the same freedesktop icon name
drawn by different Debian icon themes (class = icon name, items = the themes' drawings,
SVGs rendered at 128 px): over 1,100 classes with at least 4 themes each. The unseen-class
protocol: the first half of the classes (natural order) trains, the second half is searched
(leave-one-out retrieval over all its items); no test class is ever seen in training.

Three models, all EfficientNet-Lite0 with ImageNet weights at --input-size:

- (a) frozen: the pretrained backbone's pooled features, L2-normalised; no training;
- (b) batch-hard: backbone + 128-d head fine-tuned with in-batch batch-hard mining;
- (c) hybrid: the same, with lookalike's hybrid mining (pools mined once by the pretrained
  backbone before training, hard positives and negatives injected into every batch);
- (b/head), (c/head): the same two, with the backbone frozen for all epochs (only the
  128-d embedding head learns).

(b) and (c) get the same budget: --epochs epochs of the same number of batches of
--classes-per-batch x --items-per-class images, the same learning rates (head --lr,
backbone --lr x --backbone-lr-scale), the same first --freeze-epochs with a frozen
backbone. Each is evaluated with its *last* checkpoint (the per-epoch validation uses the
unseen classes, so picking the best epoch by it would peek at the test set). Images are
decoded and resized once (--cache-images) so that the timings measure the model.

    python bench/build_icon_dataset.py            # once: data/icons (about 3 minutes)
    python bench/photos.py                        # about 15 minutes on 2 cores
    python bench/photos.py --epochs 2 --input-size 64 --out /tmp/photos.json

Prints a markdown table and writes bench/results/photos.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from lookalike.data import ImageCollection, ImageDataset, open_seen_unseen
from lookalike.data.pipeline import cache_resized
from lookalike.evaluation import evaluate_embeddings
from lookalike.files import write_json
from lookalike.mining.model import load_mining_model
from lookalike.models import embed, load_checkpoint
from lookalike.training.config import TrainConfig
from lookalike.training.trainer import train


def embed_unseen(model: torch.nn.Module, unseen: ImageCollection, input_size: int,
                 channels: int, cache: Path) -> tuple[dict, float]:
    """Retrieval metrics on the unseen classes, and embedding images/s."""
    cached = cache_resized(unseen, input_size, channels, cache, workers=2, progress=False)
    dataset = ImageDataset(cached, channels=channels)
    started = time.perf_counter()
    embeddings = embed(model, dataset, batch_size=128, progress=False)
    seconds = time.perf_counter() - started
    metrics = evaluate_embeddings(embeddings, cached.labels).to_dict()
    return metrics, len(dataset) / seconds


def fine_tune(name: str, args: argparse.Namespace, unseen: ImageCollection) -> dict:
    """Run ``name``: a mining strategy, with "/head" to keep the backbone frozen throughout."""
    mining, _, part = name.partition("/")
    frozen_epochs = args.epochs if part == "head" else args.freeze_epochs
    config = TrainConfig.from_options(
        source=args.data, split="classes", mining=mining, epochs=args.epochs,
        backbone="efficientnet-lite0", embedding_dim=128, input_size=args.input_size,
        classes_per_batch=args.classes_per_batch, items_per_class=args.items_per_class,
        lr=args.lr, backbone_lr_scale=args.backbone_lr_scale,
        freeze_backbone_epochs=frozen_epochs, crop_padding=args.input_size // 16,
        flip=False,  # icons have a handedness (arrows, text)
        mining_model="efficientnet-lite0", mining_input_size=args.input_size,
        warmup_epochs=0, batches_per_epoch=args.batches_per_epoch, cache_images=True,
        workers=2, val_limit=args.val_limit, threads=args.threads, seed=args.seed)
    run_dir = Path(args.work) / name.replace("/", "-")
    if run_dir.exists():
        shutil.rmtree(run_dir)
    started = time.perf_counter()
    result = train(config, run_dir, show_progress=not args.quiet, log=print)
    wall = time.perf_counter() - started
    records = result.records
    model, _ = load_checkpoint(result.run.last)
    metrics, embed_rate = embed_unseen(model, unseen, args.input_size, 3,
                                       Path(args.work) / "cache")
    return {
        "name": name, "mining": mining, "metrics": metrics,
        "train_seconds": records[-1]["seconds"],
        "mining_seconds": sum(r.get("refresh_seconds", 0.0) for r in records),
        "wall_seconds": wall,
        "train_images_per_second": float(np.mean([r["images_per_second"] for r in records])),
        "embed_images_per_second": embed_rate,
        "epochs": [{k: r[k] for k in ("epoch", "train_loss", "fraction_positive",
                                        "val_map_at_r", "val_precision_at_1",
                                        "images_per_second", "seconds")} for r in records],
        "config": asdict(config),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/icons")
    parser.add_argument("--input-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batches-per-epoch", type=int, default=None,
                        help="default: training items // (P x K)")
    parser.add_argument("--classes-per-batch", type=int, default=16)
    parser.add_argument("--items-per-class", type=int, default=6,
                        help="K (hybrid: K // 3 anchors per class, each with its injected "
                        "positive and negative, so both get batches of P x K)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--backbone-lr-scale", type=float, default=0.1)
    parser.add_argument("--freeze-epochs", type=int, default=1)
    parser.add_argument("--val-limit", type=int, default=1000,
                        help="unseen items validated on after each epoch (for the log only)")
    parser.add_argument("--runs", nargs="+",
                        default=["batch-hard", "hybrid", "batch-hard/head", "hybrid/head"],
                        help="mining strategies to fine-tune with; NAME/head keeps the "
                        "backbone frozen for all epochs (only the embedding head learns)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="runs/bench-photos")
    parser.add_argument("--out", default="bench/results/photos.json")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not Path(args.data).is_dir():
        raise SystemExit(f"{args.data}: run bench/build_icon_dataset.py first")
    seen, unseen = open_seen_unseen(args.data)
    dataset_info = {
        "data": args.data, "seen_classes": int((seen.class_counts() > 0).sum()),
        "seen_items": len(seen), "unseen_classes": int((unseen.class_counts() > 0).sum()),
        "unseen_items": len(unseen),
    }
    description = Path(args.data) / "dataset.json"
    if description.is_file():
        built = json.loads(description.read_text())
        dataset_info["packages"] = built.get("packages")
    print(f"seen: {dataset_info['seen_classes']} classes, {len(seen)} items; unseen: "
          f"{dataset_info['unseen_classes']} classes, {len(unseen)} items")

    rows = []
    frozen = load_mining_model("efficientnet-lite0", in_channels=3, input_size=args.input_size)
    metrics, rate = embed_unseen(frozen, unseen, args.input_size, 3,
                                 Path(args.work) / "cache")
    rows.append({"name": "frozen pretrained", "mining": "-", "metrics": metrics,
                 "train_seconds": 0.0, "mining_seconds": 0.0, "wall_seconds": 0.0,
                 "train_images_per_second": None, "embed_images_per_second": rate})
    print(f"frozen: MAP@R {metrics['map_at_r']:.4f} P@1 {metrics['precision_at_1']:.4f}")
    for name in args.runs:
        rows.append(fine_tune(name, args, unseen))

    table = ["| model | unseen MAP@R | unseen P@1 | R-precision | train s (mining s) "
             "| train img/s | embed img/s |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        m = row["metrics"]
        train_rate = row["train_images_per_second"]
        table.append(
            f"| {row['name']} | {m['map_at_r']:.4f} | {m['precision_at_1']:.4f} | "
            f"{m['r_precision']:.4f} | {row['train_seconds']:.0f} ({row['mining_seconds']:.0f})"
            f" | {'-' if train_rate is None else f'{train_rate:.0f}'} | "
            f"{row['embed_images_per_second']:.0f} |")
    print("\n".join(table))
    write_json(args.out, {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "threads": args.threads,
                    "python": platform.python_version(), "torch": torch.__version__},
        "dataset": dataset_info, "args": vars(args), "rows": rows, "table": table})
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()

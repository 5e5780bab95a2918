"""One process against several (``torchrun``): training and index building, speed and equality.

For each process count N of --processes, in the same run and one after another:

- **training**: ``torchrun --standalone --nproc-per-node N -m lookalike train`` (N = 1: the
  plain ``python -m lookalike train``) on Fashion-MNIST with the same seed and the same
  global P x K batch, each process given ``--threads`` / N CPU threads (or its own GPU with
  ``--device cuda``). Reported: the loop's images/s (the run's own per-epoch timing,
  validation excluded), the whole command's wall seconds, and against N = 1 the largest
  relative difference in the per-epoch training loss and in the final weights;
- **index building**: ``lookalike index build`` of the Fashion-MNIST test set with the
  trained N = 1 checkpoint, under the same process counts: wall seconds, and the largest
  absolute difference between the stored vectors and those of one process (0 means
  bit-identical).

On a CPU the processes share the machine's cores, so several processes can only match one
that already uses them all; this measures what splitting costs (gathering, duplicated data
loading and augmentation) as much as what it gains. On a machine with N GPUs, run the
same script with ``--device cuda --processes 1 N``.

    python bench/distributed.py                              # 1 and 2 processes, ~4 minutes
    python bench/distributed.py --device cuda --processes 1 4 --threads 8

Prints a table and writes bench/results/distributed.json (with the git commit and machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import RunInfo, git_commit, machine, versions  # bench/machine.py: on sys.path
from safetensors.numpy import load_file

TORCHRUN = Path(sys.executable).parent / "torchrun"


def launch(processes: int, argv: list[str], threads: int) -> tuple[float, str]:
    """Run ``lookalike ARGV`` in ``processes`` processes; wall seconds and stdout."""
    if processes == 1:
        command = [sys.executable, "-m", "lookalike", *argv]
    else:
        command = [str(TORCHRUN), "--standalone", f"--nproc-per-node={processes}", "-m",
                   "lookalike", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def largest_relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(|b|, 1e-12) over every element: 0 when equal bit for bit."""
    scale = max(float(np.abs(b).max(initial=0.0)), 1e-12)
    return float(np.abs(a - b).max(initial=0.0)) / scale


def train_row(processes: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out = work / f"train-{processes}"
    threads = max(1, args.threads // processes) if args.device == "cpu" else args.threads
    argv = ["train", "--data", args.data, "--out", str(out), "--mining", args.mining,
            "--epochs", str(args.epochs), "--batches-per-epoch", str(args.batches_per_epoch),
            "--train-limit", str(args.train_limit), "--val-limit", str(args.val_limit),
            "--seed", "0", "--threads", str(threads), "--device", args.device, "--quiet"]
    seconds, _ = launch(processes, argv, threads)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    images = sum(r["train_images"] for r in records)
    loop_seconds = sum(r["train_seconds"] for r in records)
    return {"processes": processes, "threads_per_process": threads, "wall_s": seconds,
            "images_per_s": images / loop_seconds, "losses": [r["train_loss"] for r in records],
            "val_map_at_r": records[-1].get("val_map_at_r"), "run": str(out)}


def index_row(processes: int, checkpoint: Path, args: argparse.Namespace,
              work: Path) -> dict[str, Any]:
    out = work / f"index-{processes}"
    threads = max(1, args.threads // processes) if args.device == "cpu" else args.threads
    argv = ["index", "build", "--checkpoint", str(checkpoint), "--data", args.data,
            "--split", "test", "--out", str(out), "--device", args.device, "--quiet"]
    seconds, _ = launch(processes, argv, threads)
    return {"processes": processes, "threads_per_process": threads, "wall_s": seconds,
            "vectors": index_vectors(out)}


def index_vectors(folder: Path) -> np.ndarray:
    from lookalike.search import Index
    from lookalike.search.vectors import stored_vectors

    with Index.open(folder) as index:
        return stored_vectors(index.vectors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--mining", default="semi-hard")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batches-per-epoch", type=int, default=100)
    parser.add_argument("--train-limit", type=int, default=20000)
    parser.add_argument("--val-limit", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads shared out between the processes")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (one GPU per process)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/distributed.json"))
    args = parser.parse_args()
    if 1 not in args.processes:
        parser.error("--processes must include 1: the reference the others are compared to")
    if max(args.processes) > 1 and not TORCHRUN.exists():
        parser.error(f"{TORCHRUN} is not installed")
    info = RunInfo()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        trained = {n: train_row(n, args, work) for n in sorted(args.processes)}
        checkpoint = Path(trained[1]["run"]) / "best"
        indexed = {n: index_row(n, checkpoint, args, work) for n in sorted(args.processes)}
        weights = {n: load_file(str(Path(row["run"]) / "last" / "model.safetensors"))
                   for n, row in trained.items()}
    reference, reference_index = trained[1], indexed[1]
    rows = []
    for n in sorted(args.processes):
        row, built = trained[n], indexed[n]
        loss_difference = max(abs(a - b) / abs(b) for a, b in
                              zip(row["losses"], reference["losses"], strict=True))
        weight_difference = max(largest_relative_difference(weights[n][key], weights[1][key])
                                for key in weights[1])
        rows.append({
            "processes": n, "threads_per_process": row["threads_per_process"],
            "train_images_per_s": row["images_per_s"],
            "train_speed_ratio": row["images_per_s"] / reference["images_per_s"],
            "train_wall_s": row["wall_s"], "train_losses": row["losses"],
            "loss_max_relative_difference": loss_difference,
            "weights_max_relative_difference": weight_difference,
            "val_map_at_r": row["val_map_at_r"],
            "index_wall_s": built["wall_s"],
            "index_speed_ratio": reference_index["wall_s"] / built["wall_s"],
            "index_vectors_max_abs_difference": float(
                np.abs(built["vectors"] - reference_index["vectors"]).max(initial=0.0)),
        })
    header = ("processes", "threads each", "train img/s", "x 1 proc", "train wall s",
              "loss max rel diff", "weights max rel diff", "index build s", "x 1 proc",
              "index vectors max diff")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print(f"| {r['processes']} | {r['threads_per_process']} | "
              f"{r['train_images_per_s']:.0f} | {r['train_speed_ratio']:.2f} | "
              f"{r['train_wall_s']:.1f} | {r['loss_max_relative_difference']:.1e} | "
              f"{r['weights_max_relative_difference']:.1e} | {r['index_wall_s']:.1f} | "
              f"{r['index_speed_ratio']:.2f} | {r['index_vectors_max_abs_difference']:.1e} |")
    result = {"git_commit": git_commit(), "machine": machine(versions(["torch", "numpy"])),
              "run": info.info(info.seconds()),
              "config": {k: (str(v) if isinstance(v, Path) else v)
                         for k, v in vars(args).items()},
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

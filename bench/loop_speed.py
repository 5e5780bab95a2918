"""Training speed, before and after a change, measured in the same run, per mining strategy.

Each tree (a checkout of lookalike: ``--tree NAME=PATH``) trains the same short run on
Fashion-MNIST through its own command line, in a fresh process, alternating trees so that
load on the machine hits both alike. The table gives, per strategy and tree, the loop's
steps/s and images/s from the run's metrics (its own per-batch timing, validation
excluded), the wall seconds of the whole command (start-up, data, any pool mining and the
small validation included) and each tree's ratio to the first one.

The malloc tuning (``lookalike/allocator.py``) is switched off for every tree unless
``--malloc-tuning`` is given, so that a tree from before it existed is compared like for like.

    python bench/loop_speed.py --tree before=/tmp/before --tree after=. --repeats 3
    python bench/loop_speed.py --tree before=/tmp/before --tree after=. --mining semi-hard
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import RunInfo, git_commit, machine, versions  # bench/machine.py: on sys.path

RUN = ["--data", "fashion-mnist", "--epochs", "1", "--batches-per-epoch", "60",
       "--train-limit", "12000", "--val-limit", "500", "--quiet", "--seed", "0"]
STRATEGIES = ["batch-all", "batch-hard", "semi-hard", "offline", "hybrid", "offline-hard"]


def one_run(tree: Path, mining: str, threads: int, malloc_tuning: bool) -> dict[str, float]:
    """Train once with ``tree``'s code; the epoch's loop speed from its metrics line."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
        if not malloc_tuning:
            env["LOOKALIKE_MALLOC_TUNING"] = "0"
        command = [sys.executable, "-m", "lookalike", "train", "--out", f"{tmp}/run", *RUN,
                   "--mining", mining, "--threads", str(threads)]
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - started
        record = json.loads(Path(tmp, "run", "metrics.jsonl").read_text().splitlines()[0])
    return {"steps_per_second": 60 / record["train_seconds"],
            "images_per_second": record["images_per_second"], "wall_seconds": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mining", nargs="+", default=STRATEGIES, metavar="STRATEGY")
    parser.add_argument("--malloc-tuning", action="store_true",
                        help="leave lookalike's malloc tuning on (default: off for every tree)")
    parser.add_argument("--out", default="bench/results/loop_speed.json")
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.tree)
    info = RunInfo()
    runs: dict[tuple[str, str], list[dict[str, float]]] = {
        (mining, name): [] for mining in args.mining for name in trees}
    for _ in range(args.repeats):
        for mining in args.mining:
            for name, path in trees.items():
                runs[mining, name].append(
                    one_run(Path(path), mining, args.threads, args.malloc_tuning))
    first = next(iter(trees))
    rows = []
    def median(key: str, mining: str, tree: str) -> float:
        return statistics.median(r[key] for r in runs[mining, tree])

    for (mining, name), measured in runs.items():
        rows.append({"mining": mining, "tree": name, "git_commit": git_commit(Path(trees[name])),
                     "steps_per_second": median("steps_per_second", mining, name),
                     "images_per_second": median("images_per_second", mining, name),
                     "wall_seconds": median("wall_seconds", mining, name),
                     "ratio_to_first": median("steps_per_second", mining, name)
                     / median("steps_per_second", mining, first),
                     "wall_ratio_to_first": median("wall_seconds", mining, name)
                     / median("wall_seconds", mining, first),
                     "runs": measured})
    print(f"{'mining':<13} {'tree':<10} {'commit':<18} {'steps/s':>8} {'images/s':>9} "
          f"{'ratio':>6} {'wall s':>7} {'ratio':>6}")
    for row in rows:
        print(f"{row['mining']:<13} {row['tree']:<10} {row['commit']:<18} "
              f"{row['steps_per_second']:>8.2f} {row['images_per_second']:>9.0f} "
              f"{row['ratio_to_first']:>6.3f} {row['wall_seconds']:>7.1f} "
              f"{row['wall_ratio_to_first']:>6.3f}")
    result = {"machine": machine(versions(["torch", "numpy"])), "run": info.info(info.seconds()),
              "command": RUN, "threads": args.threads, "repeats": args.repeats,
              "malloc_tuning": args.malloc_tuning, "git_commit": git_commit(Path(".")),
              "results": rows}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

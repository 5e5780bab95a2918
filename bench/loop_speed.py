"""Training-loop speed, before and after a change, measured in the same run.

Each tree (a checkout of lookalike: ``--tree NAME=PATH``) trains the same short run on
Fashion-MNIST through its own command line, in a fresh process, alternating trees so that
load on the machine hits both alike; the table gives steps/s and images/s from the run's
metrics (the loop's own per-batch timing, validation excluded) and each tree's ratio to
the first one.

    python bench/loop_speed.py --tree before=/tmp/before --tree after=. --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import RunInfo, git_commit, machine, versions  # bench/machine.py: on sys.path

RUN = ["--data", "fashion-mnist", "--mining", "semi-hard", "--epochs", "1",
       "--batches-per-epoch", "60", "--train-limit", "12000", "--val-limit", "500",
       "--quiet", "--seed", "0"]


def one_run(tree: Path, threads: int) -> dict[str, float]:
    """Train once with ``tree``'s code; the epoch's loop speed from its metrics line."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
        command = [sys.executable, "-m", "lookalike", "train", "--out", f"{tmp}/run", *RUN,
                   "--threads", str(threads)]
        subprocess.run(command, env=env, check=True, capture_output=True)
        record = json.loads(Path(tmp, "run", "metrics.jsonl").read_text().splitlines()[0])
    return {"steps_per_second": 60 / record["train_seconds"],
            "images_per_second": record["images_per_second"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench/results/loop_speed.json")
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.tree)
    info = RunInfo()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.repeats):
        for name, path in trees.items():
            runs[name].append(one_run(Path(path), args.threads))
    first = next(iter(trees))
    rows = []
    for name, path in trees.items():
        steps = statistics.median(r["steps_per_second"] for r in runs[name])
        images = statistics.median(r["images_per_second"] for r in runs[name])
        base = statistics.median(r["steps_per_second"] for r in runs[first])
        rows.append({"tree": name, "commit": git_commit(Path(path)), "steps_per_second": steps,
                     "images_per_second": images, "ratio_to_first": steps / base,
                     "runs": runs[name]})
    print(f"{'tree':<10} {'commit':<18} {'steps/s':>8} {'images/s':>9} {'ratio':>6}")
    for row in rows:
        print(f"{row['tree']:<10} {row['commit']:<18} {row['steps_per_second']:>8.2f} "
              f"{row['images_per_second']:>9.0f} {row['ratio_to_first']:>6.3f}")
    result = {"machine": machine(versions(["torch", "numpy"])), "run": info.info(info.seconds()),
              "command": RUN, "threads": args.threads, "repeats": args.repeats, "results": rows}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

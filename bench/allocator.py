"""What the malloc tuning (lookalike/allocator.py) changes: images/s with it off and on.

Each case runs in a fresh process (glibc reads its settings per process), alternating off
and on so that load on the machine hits both alike: EfficientNet-Lite0 inference and
training steps at 128 px, and the small CNN's training steps at 28 px, on random images of
one fixed batch. The table gives the median images/s of each, the user and system CPU
seconds, and on/off ratios measured in the same run.

    python bench/allocator.py                 # about 3 minutes on 2 cores
    python bench/allocator.py --seconds 4 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from machine import RunInfo, git_commit, machine, versions  # bench/machine.py: on sys.path

from lookalike.files import write_json

CASES = {  # name: (backbone, input size, batch, train)
    "lite0 inference 128px": ("efficientnet-lite0", 128, 128, False),
    "lite0 training 128px": ("efficientnet-lite0", 128, 64, True),
    "small-cnn training 28px": ("small-cnn", 28, 128, True),
}

WORKER = """
import json, resource, sys, time, torch
from lookalike.allocator import tune_malloc
from lookalike.models import EmbedderConfig, build_embedder
backbone, size, batch, train, seconds, threads = json.loads(sys.argv[1])
tuned = tune_malloc()
torch.set_num_threads(threads)
channels = 3 if backbone.startswith("efficientnet") else 1
model = build_embedder(EmbedderConfig(backbone=backbone, embedding_dim=128, input_size=size,
                                      in_channels=channels), pretrained=False)
images = torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(0))
optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
model.train(train)
def step():
    if train:
        model(images).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    else:
        with torch.inference_mode():
            model(images)
step()
before, started, done = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), 0
while time.perf_counter() - started < seconds:
    step()
    done += batch
wall = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"tuned": tuned, "images_per_second": done / wall,
                  "user_s": after.ru_utime - before.ru_utime,
                  "system_s": after.ru_stime - before.ru_stime, "wall_s": wall}))
"""


def measure(case: tuple, tuned: bool, seconds: float, threads: int) -> dict:
    """One case in a fresh process with the tuning on or off."""
    env = {**os.environ, "LOOKALIKE_MALLOC_TUNING": "1" if tuned else "0"}
    done = subprocess.run([sys.executable, "-c", WORKER, json.dumps([*case, seconds, threads])],
                          env=env, capture_output=True, text=True, check=True)
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per case")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench/results/allocator.json")
    args = parser.parse_args()
    info = RunInfo()
    rows = []
    for name, case in CASES.items():
        runs: dict[bool, list[dict]] = {False: [], True: []}
        for _ in range(args.repeats):
            for tuned in (False, True):
                runs[tuned].append(measure(case, tuned, args.seconds, args.threads))
        row: dict = {"case": name}
        for tuned, label in ((False, "off"), (True, "on")):
            row[label] = {key: statistics.median(r[key] for r in runs[tuned])
                          for key in ("images_per_second", "user_s", "system_s")}
            row[label]["applied"] = all(r["tuned"] for r in runs[tuned])
        row["ratio"] = row["on"]["images_per_second"] / row["off"]["images_per_second"]
        rows.append(row)
    table = ["| case | off img/s (user s / sys s) | on img/s (user s / sys s) | on / off |",
             "|---|---|---|---|"]
    for row in rows:
        cells = [f"{row[k]['images_per_second']:.0f} ({row[k]['user_s']:.1f} / "
                 f"{row[k]['system_s']:.1f})" for k in ("off", "on")]
        table.append(f"| {row['case']} | {cells[0]} | {cells[1]} | {row['ratio']:.2f}x |")
    print("\n".join(table))
    write_json(args.out, {
        "git_commit": git_commit(), "machine": machine(versions(["torch"])),
        "run": info.info(info.seconds()), "args": vars(args), "rows": rows, "table": table})
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

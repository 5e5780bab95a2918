"""Triplet losses against pytorch-metric-learning: forward + backward time and peak memory.

Every (loss, implementation, batch size) runs in a fresh subprocess, on the same seeded
P x K batch (L2-normalised, d = 128, 8 items per class): one warm-up, then --repeats
timed forward + backward passes (more for fast cases, see --min-time), median reported.
Memory is the peak resident set size during those passes minus the resident size just
before them (Linux: the peak is reset through /proc/self/clear_refs; elsewhere ru_maxrss
is used and import peaks may hide small cases). torch threads are fixed (--threads) so
both libraries get the same cores. PML cases whose triplet lists would need more than
--max-pml-gb are skipped.

    python bench/losses.py                           # B = 128, 512, 2048; 3 repeats
    python bench/losses.py --sizes 128 512 --repeats 5 --out /tmp/losses.json

Prints a table with ours/PML ratios and writes bench/results/losses.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from machine import git_commit, machine, versions  # bench/machine.py: on sys.path
from memory import peak_rss_mb, reset_peak_rss  # bench/memory.py: this folder is on sys.path

# name -> (our TripletLoss kwargs, PML miner or None, PML smooth loss, note)
LOSSES: dict[str, tuple[dict, str | None, bool, str]] = {
    "batch-all": ({"selection": "batch-all"}, None, False, ""),
    "batch-all-soft": ({"selection": "batch-all", "soft": True}, None, True, ""),
    "batch-hard": ({"selection": "batch-hard"}, "batch-hard", False, ""),
    "batch-hard-soft": ({"selection": "batch-hard", "soft": True}, "batch-hard", True, ""),
    "semi-hard": (
        {"selection": "semi-hard"},
        "semihard",
        False,
        "PML has no per-pair FaceNet semi-hard: vs TripletMarginMiner('semihard')",
    ),
    "semi-hard-all": ({"selection": "semi-hard-all"}, "semihard", False, ""),
}
MARGIN = 0.2


def make_batch(size: int, dim: int, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A P x K batch: (size, dim) unit vectors and labels with per_class items each."""
    gen = torch.Generator().manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(size, dim, generator=gen), dim=1)
    labels = torch.arange(size) // per_class
    return emb, labels[torch.randperm(size, generator=gen)]


def build(impl: str, name: str):
    """The loss callable (embeddings, labels) -> scalar for one implementation."""
    ours_kwargs, miner_kind, soft, _ = LOSSES[name]
    if impl == "ours":
        from lookalike.losses import TripletLoss

        loss = TripletLoss(margin=MARGIN, **ours_kwargs)
        return lambda emb, labels: loss(emb, labels).loss
    from pytorch_metric_learning import distances, losses, miners

    distance = distances.LpDistance(normalize_embeddings=False, p=2, power=1)
    pml = losses.TripletMarginLoss(
        margin=0.0 if soft else MARGIN, smooth_loss=soft, distance=distance
    )
    miner = None
    if miner_kind == "batch-hard":
        miner = miners.BatchHardMiner(distance=distance)
    elif miner_kind == "semihard":
        miner = miners.TripletMarginMiner(MARGIN, type_of_triplets="semihard", distance=distance)
    return lambda emb, labels: pml(emb, labels, None if miner is None else miner(emb, labels))


def pml_estimate_gb(name: str, size: int, per_class: int) -> float:
    """Rough peak of PML's triplet listing: a B^3 byte mask (when B^3 < 2^31) + ~80 B/triplet."""
    if LOSSES[name][1] == "batch-hard":
        return 0.0
    triplets = size * (per_class - 1) * (size - per_class)
    cube = size**3 if size**3 < 2**31 - 1 else 0
    return (cube + 80 * triplets) / 1e9


def worker(args: argparse.Namespace) -> dict:
    """Run one case in this process and return its timings and memory."""
    torch.set_num_threads(args.threads)
    emb, labels = make_batch(args.size, args.dim, args.per_class, args.seed)
    fn = build(args.impl, args.loss)
    leaf = emb.clone().requires_grad_(True)
    reset_peak_rss()  # the peak RSS starts again from the current RSS (Linux)
    base = peak_rss_mb()
    times: list[float] = []
    for i in range(args.repeats + 1000):
        if i > args.repeats and (sum(times) >= args.min_time or len(times) >= 100):
            break
        leaf.grad = None
        start = time.perf_counter()
        loss = fn(leaf, labels)
        loss.backward()
        if i:  # the first pass is a warm-up
            times.append(time.perf_counter() - start)
    mem_mb = peak_rss_mb() - base
    return {
        "time_s": statistics.median(times),
        "times_s": times,
        "peak_mb": mem_mb,
        "loss": float(loss),
    }


def run_case(args: argparse.Namespace, impl: str, name: str, size: int) -> dict:
    """One case in a fresh interpreter, so peaks and allocator caches do not leak across."""
    if impl == "pml" and pml_estimate_gb(name, size, args.per_class) > args.max_pml_gb:
        return {"skipped": f"PML would need ~{pml_estimate_gb(name, size, args.per_class):.0f} GB"}
    cmd = [sys.executable, __file__, "--worker", impl, name, str(size)]
    cmd += ["--repeats", str(args.repeats), "--dim", str(args.dim)]
    cmd += ["--per-class", str(args.per_class), "--threads", str(args.threads)]
    cmd += ["--seed", str(args.seed), "--min-time", str(args.min_time)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        return {"skipped": f"failed: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ratio(ours: dict, pml: dict, key: str) -> float | None:
    if key in ours and key in pml and pml[key] > 0:
        return ours[key] / pml[key]
    return None


def table(rows: list[dict]) -> str:
    """The printed summary: one line per (loss, B)."""
    head = f"{'loss':<16}{'B':>6}{'ours ms':>10}{'PML ms':>10}{'time x':>8}"
    head += f"{'ours MB':>9}{'PML MB':>9}{'mem x':>7}  note"
    lines = [head, "-" * len(head)]

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    for row in rows:
        ours, pml = row["ours"], row["pml"]
        line = f"{row['loss']:<16}{row['size']:>6}"
        line += f"{fmt(ours.get('time_s', 0) * 1e3, '.1f'):>10}"
        line += f"{fmt(pml['time_s'] * 1e3 if 'time_s' in pml else None, '.1f'):>10}"
        line += f"{fmt(row['time_ratio'], '.2f'):>8}"
        line += f"{fmt(ours.get('peak_mb'), '.0f'):>9}{fmt(pml.get('peak_mb'), '.0f'):>9}"
        line += f"{fmt(row['memory_ratio'], '.2f'):>7}  {row['note']}"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    parser.add_argument("--repeats", type=int, default=3, help="timed passes, at least")
    parser.add_argument(
        "--min-time", type=float, default=0.5, help="repeat small cases up to this many seconds"
    )
    parser.add_argument("--out", default="bench/results/losses.json")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-pml-gb", type=float, default=8.0)
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "LOSS", "SIZE"), help="internal")
    args = parser.parse_args(argv)
    if args.worker:
        args.impl, args.loss, args.size = args.worker[0], args.worker[1], int(args.worker[2])
        print(json.dumps(worker(args)))
        return 0
    rows = []
    for size in args.sizes:
        for name in args.losses:
            ours, pml = run_case(args, "ours", name, size), run_case(args, "pml", name, size)
            notes = [LOSSES[name][3]] + [
                f"{k}: {v['skipped']}" for k, v in (("ours", ours), ("PML", pml)) if "skipped" in v
            ]
            rows.append(
                {
                    "loss": name,
                    "size": size,
                    "ours": ours,
                    "pml": pml,
                    "time_ratio": _ratio(ours, pml, "time_s"),
                    "memory_ratio": _ratio(ours, pml, "peak_mb"),
                    "note": "; ".join(n for n in notes if n),
                }
            )
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(rows))
    from lookalike.files import write_json

    keys = ("sizes", "repeats", "min_time", "dim", "per_class", "threads")
    config = {k: getattr(args, k) for k in keys}
    write_json(
        args.out,
        {"git_commit": git_commit(),
         "machine": machine(versions(["torch", "pytorch-metric-learning"])),
         "config": {**config, "margin": MARGIN, "torch": torch.__version__}, "results": rows},
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

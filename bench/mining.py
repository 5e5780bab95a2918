"""Offline pool mining: time and peak memory against N, blocked miner vs the full-matrix oracle.

Inputs: Fashion-MNIST train images as "embeddings" (raw 784 pixels through a fixed seeded
random projection to d = 64, L2-normalised) for N = 10k, 30k, 60k, or your own with
``--embeddings E.npy --labels L.npy``; and 250k synthetic items (Gaussian clusters, 10
classes). Pools: 10 hard positives and 10 hard negatives, euclidean. Each case runs in a
fresh subprocess that
only loads its (N, 64) inputs, then resets its peak RSS (Linux /proc/self/clear_refs), so
its peak (VmHWM; ``resource.getrusage`` elsewhere) minus the RSS after loading is the
miner's own. Where
the naive oracle runs too (N <= --naive-max), the table shows the speed-up and the share
of pool entries on which the two agree.

    python bench/mining.py                       # the full table (a few minutes)
    python bench/mining.py --sizes 10000 --synthetic --backends torch
    python bench/mining.py --sizes 60000 --synthetic --backends torch --k 5 \
        --positive-band 0.2 --negative-band 0.05 --out bench/results/mining-bands.json

Writes bench/results/mining.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from memory import peak_rss_mb, reset_peak_rss  # bench/memory.py: this folder is on sys.path

from lookalike.files import write_json
from lookalike.mining import PoolConfig, Pools, mine_pools

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
from tests.oracles.pools import mine_pools_naive

FASHION = Path("/usr/share/datasets/fashion-mnist")
CONFIG = PoolConfig(hard_positives=10, hard_negatives=10)


def fashion_embeddings(n: int, dim: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The first n Fashion-MNIST train images, randomly projected to dim and L2-normalised."""
    from lookalike.data.idx import read_idx_pair
    pixels, labels = read_idx_pair(FASHION / "train-images-idx3-ubyte.gz",
                                   FASHION / "train-labels-idx1-ubyte.gz")
    flat = pixels[:n].reshape(min(n, len(pixels)), -1).astype(np.float32) / 255.0
    projection = np.random.default_rng(seed).normal(size=(flat.shape[1], dim)) / np.sqrt(dim)
    x = flat @ projection.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels[:n]


def synthetic_embeddings(n: int, dim: int = 64, classes: int = 10,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters with overlapping classes, L2-normalised."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    x = (rng.normal(size=(classes, dim)) * 0.5)[labels] + rng.normal(size=(n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def available_bytes() -> float:
    """MemAvailable from /proc/meminfo (free pages elsewhere)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGESIZE"))


def child(inputs: Path, method: str, out: Path, threads: int, config: PoolConfig) -> None:
    """Mine one case and print {"seconds", "peak_mb"} as a JSON line (runs in a subprocess)."""
    import torch
    torch.set_num_threads(threads)
    with np.load(inputs) as data:
        x, y = data["x"], data["y"]
    reset_peak_rss()  # so import-time peaks do not hide the miner's
    base = peak_rss_mb()
    start = time.perf_counter()
    if method == "naive":
        pools = mine_pools_naive(x, y, config)
    else:
        pools = mine_pools(x, y, config, backend=method)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mb": max(peak_rss_mb() - base, 0.0)}))
    pools.save(out)


def agreement(a: Pools, b: Pools) -> float:
    """Share of pool index entries on which two pools agree."""
    same = [np.equal(getattr(a, f"{s}_index"), getattr(b, f"{s}_index")).mean()
            for s in ("positive", "negative")]
    return float(np.mean(same))


def run_case(work: Path, name: str, x: np.ndarray, y: np.ndarray, methods: list[str],
             threads: int, timeout: int, config: PoolConfig) -> list[dict]:
    """All methods of one input, each in a fresh subprocess; rows for the table."""
    inputs = work / f"{name}.npz"
    np.savez(inputs, x=x, y=y)
    rows, pools = [], {}
    for method in methods:
        out = work / f"{name}-{method}.npz"
        need, free = 8 * len(x) ** 2 + 64 * 512 * len(x), available_bytes()
        if method == "naive" and need > 0.6 * free:
            rows.append({"case": name, "n": len(x), "method": method,
                         "error": f"skipped: needs {need / 2**30:.1f} GB of {free / 2**30:.1f}"})
            continue
        print(f"--- {name}: {method}", file=sys.stderr, flush=True)
        try:
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(inputs), method, str(out),
                 "--threads", str(threads), "--pool-config", json.dumps(asdict(config))],
                capture_output=True, text=True,
                timeout=timeout, check=True)
        except subprocess.TimeoutExpired:
            rows.append({"case": name, "n": len(x), "method": method, "error": "timeout"})
            continue
        except subprocess.CalledProcessError as exc:
            tail = exc.stderr.strip().splitlines()[-1:] or ["failed"]
            rows.append({"case": name, "n": len(x), "method": method, "error": tail[0]})
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        pools[method] = Pools.load(out)
        out.unlink()
        rows.append({"case": name, "n": len(x), "method": method, **result,
                     "mb_per_1k_items": result["peak_mb"] / (len(x) / 1000)})
    if "naive" in pools:
        naive = next(r for r in rows if r["method"] == "naive" and "seconds" in r)
        for row in rows:
            if row["method"] != "naive" and row["method"] in pools:
                row["speedup_vs_naive"] = naive["seconds"] / row["seconds"]
                row["agreement_with_naive"] = agreement(pools[row["method"]], pools["naive"])
    inputs.unlink()
    return rows


def print_table(rows: list[dict]) -> None:
    header = ("case", "N", "method", "seconds", "peak MB", "speed-up vs naive",
              "MB per 1k items", "agrees with naive")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        if "error" in r:
            print(f"| {r['case']} | {r['n']} | {r['method']} | {r['error']} | | | | |")
            continue
        speed = f"{r['speedup_vs_naive']:.1f}x" if "speedup_vs_naive" in r else ""
        agree = f"{r['agreement_with_naive']:.4%}" if "agreement_with_naive" in r else ""
        print(f"| {r['case']} | {r['n']} | {r['method']} | {r['seconds']:.2f} "
              f"| {r['peak_mb']:.0f} | {speed} | {r['mb_per_1k_items']:.1f} | {agree} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", type=int, default=[10_000, 30_000, 60_000],
                        help="Fashion-MNIST (or --embeddings) sizes")
    parser.add_argument("--synthetic", nargs="*", type=int, default=[250_000])
    parser.add_argument("--backends", nargs="+", default=["torch", "faiss"])
    parser.add_argument("--naive-max", type=int, default=30_000,
                        help="largest N for the full-matrix oracle (8 N^2 bytes)")
    parser.add_argument("--embeddings", type=Path, help="(N, D) .npy instead of projected pixels")
    parser.add_argument("--labels", type=Path, help="(N,) .npy labels for --embeddings")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=900, help="seconds per case")
    parser.add_argument("--out", type=Path, default=Path("bench/results/mining.json"))
    parser.add_argument("--k", type=int, default=CONFIG.hard_positives,
                        help="hard positives and negatives per anchor "
                        f"(default {CONFIG.hard_positives})")
    parser.add_argument("--positive-band", type=float, default=0.0,
                        help="skip this share of each anchor's farthest positives (0)")
    parser.add_argument("--negative-band", type=float, default=0.0,
                        help="skip this share of each anchor's nearest negatives (0)")
    parser.add_argument("--pool-config", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=3, metavar=("INPUTS", "METHOD", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), args.child[1], Path(args.child[2]), args.threads,
              PoolConfig(**json.loads(args.pool_config)))
        return 0
    config = PoolConfig(hard_positives=args.k, hard_negatives=args.k,
                        positive_band=args.positive_band, negative_band=args.negative_band)
    if args.embeddings is not None:
        own = np.load(args.embeddings).astype(np.float32), np.load(args.labels)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-mining-") as tmp:
        cases = [("fashion" if args.embeddings is None else "embeddings", n) for n in args.sizes]
        cases += [("synthetic", n) for n in args.synthetic]
        for source, n in cases:
            if source == "synthetic":
                x, y = synthetic_embeddings(n)
            elif source == "fashion":
                x, y = fashion_embeddings(n)
            else:
                x, y = own[0][:n], own[1][:n]
            methods = args.backends + (["naive"] if len(x) <= args.naive_max else [])
            rows += run_case(Path(tmp), f"{source}-{len(x)}", x, y, methods, args.threads,
                             args.timeout, config)
    import faiss
    import torch
    write_json(args.out, {
        "config": asdict(config), "threads": args.threads, "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "faiss": faiss.__version__,
        "load_average_after": os.getloadavg()[0], "rows": rows})
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

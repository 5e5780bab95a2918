"""Search: lookalike's ``Index`` against raw FAISS, batch throughput and single-query latency.

For each N (10k, 100k, 1M) and d (64, 128), synthetic clustered unit vectors (1000
Gaussian centres + noise, L2-normalised, float32, seeded) are indexed three ways (flat,
hnsw, ivf, with the ``IndexSpec`` defaults), and with ``--kinds qdrant-local`` a fourth: a
Qdrant collection in qdrant-client's LOCAL MODE (in-process numpy, exact; what the tests
use, not a production store: a Qdrant server runs HNSW in its own process), filled the
way ``index export --to qdrant`` fills one (``upload.fill_collection``: staged, verified,
aliased) and searched through ``QdrantIndex``. Each index folder is written the way
lookalike writes one (``build_vector_index`` + ``IndexStore.create`` with one metadata row
per item, then ``Index.open``; the rows are created once per N and copied for the other
kinds and dims, see ``write_index``); no model is needed: ``search_vectors`` never embeds.

Every search is sent twice in the same run, alternating (ABBA) and on the same threads:

- lookalike: ``Index.search_vectors(queries, k)`` (id map, checks, distances in the
  index's unit: Euclidean here);
- raw FAISS: the bare index under the id map (``IndexFlat`` / ``IndexHNSWFlat`` /
  ``IndexIVFFlat``, what a FAISS user would build) with ``.search(queries, k)``;
  for qdrant-local, raw is the client's own ``query_batch_points`` / ``query_points`` on
  the same collection (so the overhead is lookalike's over the client), and the
  speed-up column compares it with the FAISS flat index of the same run.

Batch: --batch queries per call, --repeats pairs, median; overhead = median of the paired
time ratios - 1. Single: --single one-query calls each, p50 / p99. The metadata lookup that
``Index.search`` adds (``Index.hits``, SQLite) is timed on its own and kept out of the
overhead. Recall@10 of hnsw / ivf is measured against the exact (flat) answer to the same
batch queries; speed-up = approximate / exact throughput (and single p50 ratio).

Each (N, d) runs in a fresh subprocess; the peak RSS of a kind (VmHWM, reset before it)
includes the (N, d) vectors the case holds.

    python bench/search.py                                   # the full grid (~1 h, 2 cores)
    python bench/search.py --sizes 10000 100000 --dims 64 --kinds flat hnsw
    python bench/search.py --threads 4 --out /tmp/search.json

Prints a markdown table and writes bench/results/search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import RunInfo, git_commit, machine  # bench/machine.py: on sys.path
from memory import peak_rss_mb, reset_peak_rss  # bench/memory.py

CENTRES = 1000
K = 10
DISTANCE = "euclidean"
"""The distance of the synthetic "model": lookalike's default, searched by FAISS's L2."""


def clustered(labels: np.ndarray, centres: np.ndarray, rng: np.random.Generator,
              noise: float) -> np.ndarray:
    """(n, d) float32 unit vectors: ``centres[labels]`` plus noise of norm ~``noise``."""
    dim = centres.shape[1]
    x = centres[labels]  # fancy indexing copies
    x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(noise / np.sqrt(dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def synthetic(n: int, dim: int, n_batch: int, n_single: int, seed: int,
              noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Items, their cluster numbers, batch queries and single queries (same clusters).

    The cluster numbers depend on N only, so every d of one N has the same metadata rows.
    """
    centres = np.random.default_rng([seed, dim]).standard_normal((CENTRES, dim),
                                                                 dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.random.default_rng([seed, n]).integers(0, CENTRES, n)
    items = clustered(labels, centres, np.random.default_rng([seed, dim, n]), noise)
    query_labels = np.random.default_rng([seed, n, 1]).integers(0, CENTRES, n_batch + n_single)
    queries = clustered(query_labels, centres, np.random.default_rng([seed, dim, n, 1]), noise)
    return items, labels, queries[:n_batch], queries[n_batch:]


def write_index(folder: Path, items: np.ndarray, labels: np.ndarray, kind: str,
                rows_from: Path | None = None):
    """Write an index folder the way lookalike does; the opened ``Index`` and its timings.

    The metadata rows are written by ``IndexStore.create``, or, with ``rows_from`` (the
    ``index.sqlite`` of another index over the same items), copied from there and given these
    vectors, dim and spec by ``IndexStore.commit``, the way ``Index.add`` / ``remove`` swap
    vectors. ``create`` writes all rows in one transaction (about 4 s for 1M rows here, in
    ``store_s``); copying spares that for the other kinds and dims of the same N.
    """
    from lookalike.search.index import Index
    from lookalike.search.spec import IndexSpec
    from lookalike.search.store import DATABASE, IndexStore, NewItem
    from lookalike.search.vectors import build_vector_index

    n, dim = items.shape
    spec = IndexSpec(kind).resolved(n)
    ids = np.arange(n, dtype=np.int64)
    start = time.perf_counter()
    vectors = build_vector_index(items, ids, spec, DISTANCE)
    build_s = time.perf_counter() - start
    meta = {"fingerprint": "synthetic", "dim": dim, "distance": DISTANCE,
            "spec": spec.to_dict(), "next_id": n}
    start = time.perf_counter()
    if rows_from is None:
        rows = (NewItem(i, f"synthetic#{i}", None, f"c{c:04d}")
                for i, c in enumerate(labels.tolist()))
        IndexStore.create(folder, meta, vectors, rows).close()
    else:
        folder.mkdir(parents=True)
        shutil.copyfile(rows_from, folder / DATABASE)
        store = IndexStore.open(folder)
        store.commit(vectors, meta={"spec": spec.to_dict(), "dim": dim})
        store.close()
    store_s = time.perf_counter() - start
    del vectors
    start = time.perf_counter()
    index = Index.open(folder)
    open_s = time.perf_counter() - start
    return index, {"build_s": build_s, "store_s": store_s, "open_s": open_s,
                   "rows": "created" if rows_from is None else "copied"}


FAISS_KINDS = ("flat", "hnsw", "ivf")
QDRANT_LOCAL = "qdrant-local"


def write_qdrant_index(folder: Path, items: np.ndarray, labels: np.ndarray):
    """A Qdrant index folder over a local-mode collection in ``folder/store``, filled as
    ``index export`` fills one (payload per item, staged, verified, aliased)."""
    from lookalike.search.index import Index
    from lookalike.search.qdrant.build import _collection_meta
    from lookalike.search.qdrant.connection import connect, disconnect, qdrant_distance
    from lookalike.search.qdrant.manifest import ImageStore, Manifest
    from lookalike.search.qdrant.upload import fill_collection, payloads_of
    from lookalike.search.store import NewItem

    n, dim = items.shape
    location = str((folder / "store").resolve())
    manifest = Manifest(location, "bench", "synthetic", dim, DISTANCE)
    folder.mkdir(parents=True)
    ImageStore(folder).close()
    manifest.write(folder)
    ids = np.arange(n, dtype=np.int64)
    rows = [NewItem(i, f"synthetic#{i}", None, f"c{c:04d}") for i, c in enumerate(labels.tolist())]
    client = connect(location)
    start = time.perf_counter()
    try:
        fill_collection(client, location, "bench", key="synthetic", vectors=items, ids=ids,
                        payloads=payloads_of(rows, "synthetic"),
                        distance=qdrant_distance(DISTANCE), meta=_collection_meta(manifest, n),
                        overwrite=False, progress=False, log=lambda line: None)
    finally:
        disconnect(location)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    index = Index.open(folder)
    open_s = time.perf_counter() - start
    return index, {"build_s": build_s, "store_s": 0.0, "open_s": open_s, "rows": "payloads"}


class RawQdrant:
    """The qdrant client's own search on the index's collection, FAISS-shaped: what a
    user of qdrant-client alone would call."""

    def __init__(self, index) -> None:
        self.client, self.collection = index.client, index.collection

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from qdrant_client import models

        if len(queries) == 1:
            rows = [self.client.query_points(self.collection, query=queries[0].tolist(),
                                             limit=k).points]
        else:
            rows = [r.points for r in self.client.query_batch_points(
                self.collection, requests=[models.QueryRequest(query=q.tolist(), limit=k)
                                           for q in queries])]
        ids = np.array([[p.id for p in row] for row in rows], dtype=np.int64)
        scores = np.array([[p.score for p in row] for row in rows], dtype=np.float32)
        return scores, ids


def time_batch(index, raw, queries: np.ndarray, repeats: int,
               min_time: float) -> dict[str, Any]:
    """Alternating (ABBA) batch searches: lookalike and raw FAISS times, and the answers.

    At least ``repeats`` calls a side, more until each side has run ``min_time`` seconds
    (at most 200), so fast cases get enough pairs for a stable median ratio.
    """
    calls = {"lookalike": lambda: index.search_vectors(queries, K).ids,
             "raw": lambda: raw.search(queries, K)[1]}
    answers = {name: call() for name, call in calls.items()}  # warm-up
    times: dict[str, list[float]] = {"lookalike": [], "raw": []}
    for r in range(200):
        if r >= repeats and sum(times["raw"]) >= min_time:
            break
        for name in (("lookalike", "raw") if r % 2 == 0 else ("raw", "lookalike")):
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(times["lookalike"], times["raw"], strict=True)]
    found = index.search_vectors(queries, K)
    hits_s = []
    for _ in range(max(1, min(repeats, 3))):
        start = time.perf_counter()
        index.hits(found)
        hits_s.append(time.perf_counter() - start)
    n = len(queries)
    return {
        "lookalike_s": times["lookalike"], "raw_s": times["raw"],
        "lookalike_qps": n / statistics.median(times["lookalike"]),
        "raw_qps": n / statistics.median(times["raw"]),
        "overhead": statistics.median(ratios) - 1.0,
        "overhead_of_medians": (statistics.median(times["lookalike"])
                                / statistics.median(times["raw"]) - 1.0),
        "hits_ms_per_query": 1e3 * statistics.median(hits_s) / n,
        "same_ids_as_raw": bool(np.array_equal(answers["lookalike"], answers["raw"])),
        "ids": answers["lookalike"],
    }


def time_single(index, raw, queries: np.ndarray, warmup: int = 10) -> dict[str, Any]:
    """One query a call, alternating which goes first; p50 / p99 in ms."""
    times: dict[str, list[float]] = {"lookalike": [], "raw": [], "hits": []}
    same = True
    for i in range(-warmup, len(queries)):
        query = queries[i % len(queries)][None]  # (1, d), C-contiguous
        order = ("lookalike", "raw") if i % 2 == 0 else ("raw", "lookalike")
        for name in order:
            start = time.perf_counter()
            if name == "lookalike":
                found = index.search_vectors(query, K)
            else:
                _, raw_ids = raw.search(query, K)
            elapsed = time.perf_counter() - start
            if i >= 0:
                times[name].append(elapsed)
        start = time.perf_counter()
        index.hits(found)
        if i >= 0:
            times["hits"].append(time.perf_counter() - start)
            same &= bool(np.array_equal(found.ids, raw_ids))
    ms = {name: 1e3 * np.asarray(t) for name, t in times.items()}
    return {
        "lookalike_p50_ms": float(np.percentile(ms["lookalike"], 50)),
        "lookalike_p99_ms": float(np.percentile(ms["lookalike"], 99)),
        "raw_p50_ms": float(np.percentile(ms["raw"], 50)),
        "raw_p99_ms": float(np.percentile(ms["raw"], 99)),
        "overhead_p50": float(np.median(ms["lookalike"] / ms["raw"]) - 1.0),
        "hits_p50_ms": float(np.percentile(ms["hits"], 50)),
        "same_ids_as_raw": same,
    }


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact k nearest that the approximate answer holds."""
    hits = [len(np.intersect1d(f[f >= 0], e)) for f, e in zip(found, exact, strict=True)]
    return float(np.mean(hits) / exact.shape[1])


def exact_ids(items: np.ndarray, queries: np.ndarray) -> np.ndarray:
    import faiss
    flat = faiss.IndexFlatL2(items.shape[1])  # DISTANCE: euclidean
    flat.add(items)
    return flat.search(queries, K)[1]


def child(args: argparse.Namespace, n: int, dim: int) -> None:
    """All kinds of one (N, d) case in this process; prints one JSON row per kind."""
    import faiss
    import torch

    from lookalike.search.store import DATABASE
    from lookalike.search.vectors import inner_index

    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    items, labels, batch, single = synthetic(n, dim, args.batch, args.single, args.seed,
                                             args.noise)
    rows_from = Path(args.work) / f"{n}-rows.sqlite"  # kept for the other dims of this N
    exact: np.ndarray | None = None
    flat: dict[str, Any] | None = None
    for kind in sorted(args.kinds, key=(*FAISS_KINDS, QDRANT_LOCAL).index):
        print(f"--- N={n} d={dim} {kind}", file=sys.stderr, flush=True)
        reset_peak_rss()
        folder = Path(args.work) / f"{n}-{dim}-{kind}"
        if kind == QDRANT_LOCAL:
            index, build = write_qdrant_index(folder, items, labels)
            raw, spec = RawQdrant(index), {"kind": QDRANT_LOCAL}
        else:
            index, build = write_index(folder, items, labels, kind,
                                       rows_from if rows_from.exists() else None)
            if not rows_from.exists():
                shutil.copyfile(folder / DATABASE, rows_from)
            raw, spec = inner_index(index.vectors), index.spec.to_dict()
        batch_result = time_batch(index, raw, batch, args.repeats, args.min_time)
        single_result = time_single(index, raw, single)
        found = batch_result.pop("ids")
        if kind == "flat":
            exact = found
        elif exact is None:
            exact = exact_ids(items, batch)
        row = {"n": n, "dim": dim, "kind": kind, "spec": spec, **build,
               "batch": batch_result, "single": single_result,
               "recall_at_10": recall_at_k(found, exact), "peak_rss_mb": peak_rss_mb(),
               "load_average": os.getloadavg()[0]}
        if kind == "flat":
            flat = row
        elif flat is not None:
            row["speedup_batch"] = batch_result["lookalike_qps"] / flat["batch"]["lookalike_qps"]
            row["speedup_single_p50"] = (flat["single"]["lookalike_p50_ms"]
                                         / single_result["lookalike_p50_ms"])
        index.close()
        del index, raw
        shutil.rmtree(folder)
        print(format_row(row), file=sys.stderr, flush=True)
        print(json.dumps(row), flush=True)


def run_case(args: argparse.Namespace, work: Path, n: int, dim: int) -> list[dict[str, Any]]:
    """One (N, d) case in a fresh interpreter (clean memory and peaks)."""
    cmd = [sys.executable, __file__, "--child", str(n), str(dim), "--work", str(work),
           "--threads", str(args.threads), "--repeats", str(args.repeats),
           "--min-time", str(args.min_time), "--batch", str(args.batch),
           "--single", str(args.single), "--seed", str(args.seed),
           "--noise", str(args.noise), "--kinds", *args.kinds]
    try:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, timeout=args.timeout, check=False)
        out, error = done.stdout, f"exit {done.returncode}" if done.returncode else ""
    except subprocess.TimeoutExpired as exc:
        out, error = exc.stdout or b"", f"timeout ({args.timeout} s)"
    rows = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    done_kinds = {row["kind"] for row in rows}
    rows += [{"n": n, "dim": dim, "kind": kind, "error": error}
             for kind in args.kinds if kind not in done_kinds]
    return rows


HEADER = ("N", "d", "kind", "build s", "batch q/s lookalike", "batch q/s raw", "overhead %",
          "single p50 ms (lookalike/raw)", "p99 ms (lookalike/raw)",
          "metadata ms/query (batch/single)", "recall@10", "speed-up vs flat (batch/p50)")


def times(x: float) -> str:
    return f"{x:.1f}x" if x >= 1 else f"{x:.2g}x"


def format_row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"| {r['n']} | {r['dim']} | {r['kind']} | {r['error']} |" + " |" * 8
    b, s = r["batch"], r["single"]
    speed = (f"{times(r['speedup_batch'])} / {times(r['speedup_single_p50'])}"
             if "speedup_batch" in r else "1x" if r["kind"] == "flat" else "")
    cells = (r["n"], r["dim"], r["kind"], f"{r['build_s']:.2f}", f"{b['lookalike_qps']:,.0f}",
             f"{b['raw_qps']:,.0f}", f"{100 * b['overhead']:+.1f}",
             f"{s['lookalike_p50_ms']:.3f} / {s['raw_p50_ms']:.3f}",
             f"{s['lookalike_p99_ms']:.3f} / {s['raw_p99_ms']:.3f}",
             f"{b['hits_ms_per_query']:.3f} / {s['hits_p50_ms']:.3f}",
             f"{r['recall_at_10']:.3f}", speed)
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += [format_row(r) for r in rows]
    lines.append("")
    lines.append(
        f"lookalike = `Index.search_vectors` (id map, input checks, Euclidean distances); "
        f"raw = the bare FAISS index under lookalike's id map, `.search` ({QDRANT_LOCAL}: "
        f"qdrant-client's own query calls on the same local-mode collection, and speed-up "
        f"against the FAISS flat row). Batch: "
        f"{args.batch} queries a call, median of >= {args.repeats} alternating calls a side "
        f"(>= {args.min_time:g} s); overhead = median paired time ratio - 1. Single: "
        f"p50/p99 of {args.single} one-query calls. Metadata (`Index.hits`, SQLite + Hit "
        f"objects) is timed apart, per query, and NOT in the overhead. Recall@10 against "
        f"exact search on the same queries; {args.threads} threads.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dims", nargs="+", type=int, default=[64, 128])
    parser.add_argument("--kinds", nargs="+", default=list(FAISS_KINDS),
                        choices=[*FAISS_KINDS, QDRANT_LOCAL],
                        help=f"index kinds; {QDRANT_LOCAL}: a Qdrant collection in the "
                        "client's local mode (in-process, exact; not a production store)")
    parser.add_argument("--threads", type=int, default=2, help="FAISS (OpenMP) and torch")
    parser.add_argument("--batch", type=int, default=1000, help="queries per batch call")
    parser.add_argument("--single", type=int, default=200, help="single-query calls")
    parser.add_argument("--repeats", type=int, default=6,
                        help="timed batch calls per side, alternating (at least)")
    parser.add_argument("--min-time", type=float, default=2.0,
                        help="more batch calls until each side ran this many seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=1.0,
                        help="noise norm around the unit cluster centres")
    parser.add_argument("--timeout", type=int, default=7200, help="seconds per (N, d) case")
    parser.add_argument("--out", type=Path, default=Path("bench/results/search.json"))
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, type=int, metavar=("N", "D"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args, *args.child)
        return 0
    run, commit = RunInfo(), git_commit()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-search-") as tmp:
        for n in args.sizes:
            for dim in args.dims:
                rows += run_case(args, Path(tmp), n, dim)
    seconds = run.seconds()
    import faiss
    import torch

    from lookalike.files import write_json
    config = {k: getattr(args, k) for k in ("sizes", "dims", "kinds", "threads", "batch",
                                             "single", "repeats", "min_time", "seed",
                                             "noise")}
    write_json(args.out, {
        "config": {**config, "k": K, "centres": CENTRES}, "git_commit": commit,
        "machine": machine({"faiss": faiss.__version__, "torch": torch.__version__,
                            "numpy": np.__version__}),
        **run.info(total_s=seconds), "rows": rows})
    print(table(rows, args))
    print(f"\nwrote {args.out} ({seconds / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

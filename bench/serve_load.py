"""Serving under load: N concurrent clients against ``lookalike serve`` on a 60k-item index.

The real server runs as a subprocess (``python -m lookalike serve --index ... --port P``,
its torch/OpenMP threads pinned with OMP_NUM_THREADS=--server-threads). For each
concurrency level (10, 50 clients), one asyncio process runs N clients, each with its own
``httpx.AsyncClient`` (one keep-alive connection) and each sending a request as soon as its
previous one is answered (closed loop): ``POST /api/search`` with a PNG from the
Fashion-MNIST *test* set (distinct images, encoded once in memory) and k = 10, for --warmup
seconds (not counted), then for --seconds. Every latency is recorded; an error is a non-200
status, a body without k results, or an exception (timeout, refused connection...). With
--similar-share P, a second row per level sends that share of its requests as
``GET /api/items/{id}/similar``.

The index: --index FOLDER, or by default the whole Fashion-MNIST training set (60,000
items) embedded with the demo checkpoint (--checkpoint runs/demo/train/best), built once
into --work (runs/bench-serve/) and reused when that folder exists.

The client runs on the same machine as the server, so both compete for its cores: the
numbers are a lower bound for a server with the machine to itself.

    python bench/serve_load.py                    # 10 and 50 clients, 20 s each (~2 min)
    python bench/serve_load.py --clients 1 10 50 --seconds 30 --similar-share 0.2
    python bench/serve_load.py --index indexes/photos --out /tmp/serve.json

Prints a markdown table and writes bench/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from machine import RunInfo, machine, versions  # bench/machine.py: the folder is on sys.path


def build_index(checkpoint: Path, work: Path) -> Path:
    """The cached 60k-item Fashion-MNIST train index under ``work`` (built once)."""
    folder = work / "fashion-mnist-train"
    if folder.exists():  # Index.build moves a folder into place only once it is whole
        print(f"reusing the index {folder}", file=sys.stderr, flush=True)
        return folder
    from lookalike.search import Index

    print(f"building the index {folder} with {checkpoint} (once)...", file=sys.stderr,
          flush=True)
    started = time.perf_counter()
    Index.build(checkpoint, "fashion-mnist", folder, split="train", progress=False,
                log=lambda line: print(line, file=sys.stderr, flush=True)).close()
    print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return folder


def query_pngs(n: int) -> list[bytes]:
    """The first n Fashion-MNIST test images, each encoded as PNG bytes."""
    from PIL import Image

    from lookalike.data.fashion_mnist import load_fashion_mnist

    out = []
    for image in load_fashion_mnist("test").pixels[:n]:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class Server:
    """``lookalike serve`` in a subprocess, its output in a log file."""

    def __init__(self, index: Path, threads: int, log: Path, startup_timeout: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "lookalike", "serve", "--index", str(index),
                        "--port", str(self.port)]
        self.env = {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                    "OPENBLAS_NUM_THREADS")}
        self.log_path = log
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.health: dict[str, Any] = {}
        self.startup_s = float("nan")

    def __enter__(self) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(self.command, stdout=self._log,
                                        stderr=subprocess.STDOUT,
                                        env={**os.environ, **self.env})
        started = time.perf_counter()
        while time.perf_counter() - started < self.startup_timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}) "
                                   f"before answering; see {self.log_path}:\n{self.log_tail()}")
            try:
                answer = httpx.get(f"{self.url}/api/health", timeout=2)
                if answer.status_code == 200:
                    self.health = answer.json()
                    self.startup_s = time.perf_counter() - started
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"no answer from {self.url}/api/health after "
                           f"{self.startup_timeout:g} s; see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Ctrl-C (uvicorn shuts down gracefully), then SIGTERM / SIGKILL if it lingers."""
        if self.process is not None and self.process.poll() is None:
            for send, wait in ((lambda p: p.send_signal(signal.SIGINT), 15),
                               (subprocess.Popen.terminate, 5), (subprocess.Popen.kill, 5)):
                send(self.process)
                try:
                    self.process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if hasattr(self, "_log"):
            self._log.close()

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class Recorder:
    """Latencies and errors of one measured run (or of a discarded warm-up)."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {"search": [], "similar": []}
        self.server_seconds: list[float] = []
        self.errors: dict[str, int] = {}
        self.error_samples: list[str] = []

    def error(self, kind: str, sample: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.error_samples) < 5:
            self.error_samples.append(sample[:300])


async def client_task(client: httpx.AsyncClient, deadline: float, queries: list[bytes],
                      first: int, step: int, k: int, share: float, ids: list[int],
                      rng: random.Random, record: Recorder) -> None:
    """One client: a request as soon as the previous one is answered, until the deadline."""
    i = first
    while time.perf_counter() < deadline:
        similar = share > 0 and rng.random() < share
        started = time.perf_counter()
        try:
            if similar:
                answer = await client.get(f"/api/items/{rng.choice(ids)}/similar",
                                          params={"k": k})
            else:
                png = queries[i % len(queries)]
                answer = await client.post("/api/search", data={"k": str(k)},
                                           files={"image": (f"q{i % len(queries)}.png", png,
                                                            "image/png")})
                i += step
            seconds = time.perf_counter() - started
            if answer.status_code != 200:
                record.error(f"HTTP {answer.status_code}", answer.text)
                continue
            body = answer.json()
            if len(body.get("results", ())) != k:
                record.error("wrong result count", answer.text)
                continue
        except Exception as exc:  # every failure is counted, none stops the run
            record.error(type(exc).__name__, f"{type(exc).__name__}: {exc}")
            continue
        record.latencies["similar" if similar else "search"].append(seconds)
        if not similar:
            record.server_seconds.append(float(body.get("seconds", float("nan"))))


async def run_level(server: Server, clients: int, args: argparse.Namespace,
                    queries: list[bytes], share: float,
                    ids: list[int]) -> tuple[Recorder, float, float, float]:
    """Warm up, then measure ``clients`` concurrent clients for --seconds: the record,
    elapsed seconds, and the CPU seconds server and client used meanwhile.

    Each client has its own ``AsyncClient`` (one keep-alive connection, as each user of the
    page has): N tasks sharing one client's connection pool measured httpcore's pool more
    than the server (at 50 clients, about half the throughput and a 4x p99).
    """
    pid = server.process.pid
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        pool = [await stack.enter_async_context(
                    httpx.AsyncClient(base_url=server.url, limits=limits,
                                      timeout=args.request_timeout))
                for _ in range(clients)]
        for seconds in (args.warmup, args.seconds):
            record = Recorder()
            server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
            started = time.perf_counter()
            deadline = started + seconds
            await asyncio.gather(*(
                client_task(client, deadline, queries, c, clients, args.k, share, ids,
                            random.Random(args.seed * 1000 + c), record)
                for c, client in enumerate(pool)))
            elapsed = time.perf_counter() - started
            server_cpu = cpu_seconds(pid) - server_cpu
            client_cpu = time.process_time() - client_cpu
    return record, elapsed, server_cpu, client_cpu


def summarise(record: Recorder, elapsed: float, clients: int, workload: str,
              server_cpu: float, client_cpu: float) -> dict[str, Any]:
    every = np.array(record.latencies["search"] + record.latencies["similar"]) * 1000
    errors = sum(record.errors.values())
    row: dict[str, Any] = {
        "workload": workload, "clients": clients, "requests": len(every),
        "errors": errors, "error_kinds": record.errors, "error_samples": record.error_samples,
        "elapsed_s": elapsed, "requests_per_s": len(every) / elapsed,
        "server_cpu_per_s": server_cpu / elapsed, "client_cpu_per_s": client_cpu / elapsed}
    if len(every):
        p50, p90, p99 = np.percentile(every, [50, 90, 99])
        row.update(p50_ms=p50, p90_ms=p90, p99_ms=p99, max_ms=float(every.max()),
                   mean_ms=float(every.mean()))
    if record.server_seconds:
        row["server_search_p50_ms"] = float(np.nanmedian(record.server_seconds)) * 1000
    for kind, values in record.latencies.items():
        if values:
            ms = np.array(values) * 1000
            row[f"{kind}_requests"] = len(values)
            row[f"{kind}_p50_ms"], row[f"{kind}_p99_ms"] = np.percentile(ms, [50, 99])
    return row


def table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    mixed = any(r["workload"] != "search" for r in rows)
    header = ["workload"] * mixed + ["clients", "requests", "req/s", "p50 ms", "p90 ms",
                                     "p99 ms", "max ms", "errors"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["workload"]] * mixed + [str(r["clients"]), str(r["requests"]),
                                           f"{r['requests_per_s']:.1f}"]
        cells += [f"{r[key]:.0f}" if key in r else "-"
                  for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms")]
        cells.append(str(r["errors"]))
        lines.append("| " + " | ".join(cells) + " |")
    cpu = ", ".join(f"{r['clients']} clients: server {r['server_cpu_per_s']:.2f}, client "
                    f"{r['client_cpu_per_s']:.2f}" for r in rows if r["workload"] == "search")
    server_p50 = ", ".join(f"{r['server_search_p50_ms']:.1f}" for r in rows
                           if r["workload"] == "search" and "server_search_p50_ms" in r)
    lines += ["", f"`POST /api/search` (multipart PNG, 28x28 Fashion-MNIST test image, k = "
              f"{meta['k']}) against `lookalike serve` on a {meta['items']:,}-item "
              f"{meta['kind']} index, closed loop: each client sends its next request when "
              f"the previous one is answered; {meta['seconds']:g} s per row after a "
              f"{meta['warmup']:g} s warm-up. Clients (one httpx.AsyncClient each, asyncio, "
              f"one process) and server (uvicorn, OMP_NUM_THREADS={meta['server_threads']}) "
              f"share the same "
              f"{meta['cpu_count']}-core machine, so these numbers are a lower bound. "
              f"Cores busy (CPU-s per s): {cpu}. The server's own `seconds` per search "
              f"(model lock wait + embed + FAISS, p50 ms): {server_p50}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", nargs="+", type=int, default=[10, 50],
                        help="concurrency levels (default 10 50)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per level")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="unmeasured load before each level (seconds)")
    parser.add_argument("--k", type=int, default=10, help="results per request")
    parser.add_argument("--queries", type=int, default=1000,
                        help="distinct test images sent, cycled (default 1000)")
    parser.add_argument("--similar-share", type=float, default=0.0,
                        help="also run each level with this share of GET .../similar")
    parser.add_argument("--index", type=Path, help="an existing index folder (default: "
                        "build the Fashion-MNIST train index into --work)")
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/demo/train/best"),
                        help="model for the default index (default runs/demo/train/best)")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-serve"),
                        help="where the default index is cached, and the server log")
    parser.add_argument("--server-threads", type=int, default=os.cpu_count() or 1,
                        help="OMP/MKL threads of the server (default: the core count)")
    parser.add_argument("--request-timeout", type=float, default=60.0,
                        help="seconds before a request counts as an error")
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/serve_load.json"))
    args = parser.parse_args(argv)
    if not 0 <= args.similar_share <= 1:
        parser.error("--similar-share must be between 0 and 1")

    index = args.index if args.index is not None else build_index(args.checkpoint, args.work)
    queries = query_pngs(args.queries)
    run = RunInfo()
    workloads = [("search", 0.0)]
    if args.similar_share > 0:
        workloads.append((f"search + {args.similar_share:.0%} similar", args.similar_share))
    rows: list[dict[str, Any]] = []
    server = Server(index, args.server_threads, args.work / "server.log", args.startup_timeout)
    with server:
        print(f"server up in {server.startup_s:.1f} s at {server.url}: {server.health}",
              file=sys.stderr, flush=True)
        ids: list[int] = []
        if args.similar_share > 0:
            for _ in range(5):
                page = httpx.get(f"{server.url}/api/items", params={"random": 100}, timeout=10)
                ids += [item["id"] for item in page.json()["items"]]
        for name, share in workloads:
            for clients in args.clients:
                print(f"--- {name}: {clients} clients", file=sys.stderr, flush=True)
                record, elapsed, server_cpu, client_cpu = asyncio.run(
                    run_level(server, clients, args, queries, share, ids))
                rows.append(summarise(record, elapsed, clients, name, server_cpu, client_cpu))
                if record.errors:
                    print(f"    errors: {record.errors} {record.error_samples[:2]}",
                          file=sys.stderr, flush=True)
        alive = server.process.poll() is None
    log = server.log_path.read_text(errors="replace")
    problems = [line for line in log.splitlines()
                if "Traceback" in line or "ERROR" in line or "Exception" in line]
    meta = {"items": server.health.get("items"), "kind": server.health.get("kind"),
            "distance": server.health.get("distance"), "k": args.k, "seconds": args.seconds,
            "warmup": args.warmup,
            "server_threads": args.server_threads, "cpu_count": os.cpu_count()}
    from lookalike.files import write_json
    write_json(args.out, {
        "config": {**meta, "clients": args.clients, "queries": args.queries,
                   "similar_share": args.similar_share, "request_timeout": args.request_timeout,
                   "seed": args.seed, "index": str(index), "model": server.health.get("model"),
                   "checkpoint": str(args.checkpoint) if args.index is None else None},
        "server": {"command": server.command, "env": server.env, "startup_s": server.startup_s,
                   "alive_after_load": alive, "exit_code": server.process.returncode,
                   "log_problem_lines": problems[:20]},
        "client": ("one process: asyncio, one httpx.AsyncClient (one keep-alive "
                   "connection) per client, closed loop"),
        "note": "client and server share the machine's cores: a lower bound",
        "machine": machine(versions(("torch", "faiss-cpu", "fastapi", "uvicorn", "httpx",
                                     "numpy"))),
        **run.info(), "rows": rows})
    print(table(rows, meta))
    print(f"\nwrote {args.out}; server log {server.log_path}"
          + (f" ({len(problems)} error lines)" if problems else ""))
    return 1 if any(r["errors"] for r in rows) or problems else 0


if __name__ == "__main__":
    sys.exit(main())

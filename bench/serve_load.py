"""Serving under load: N concurrent clients against ``lookalike serve`` on a 60k-item index.

The real server runs as a subprocess (``python -m lookalike serve --index ... --port P``,
its torch/OpenMP threads pinned with OMP_NUM_THREADS=--server-threads, shared out between
worker processes). Several server configurations are measured in the same run, one after
another, each at every concurrency level (default 10, 50, 100, 200 clients):

- ``a``: one query at a time (``--no-batching --runtime torch``: the server before
  batching);
- ``b``: dynamic batching, PyTorch (``--runtime torch``);
- ``c``: dynamic batching, ONNX Runtime (``--runtime onnx``);
- ``d``: dynamic batching with the faster runtime of b and c (by requests/s at 50 clients),
  in each worker count of --workers-options; the best is marked.

For each level, one asyncio process runs N clients, each with its own ``aiohttp`` session
(one keep-alive connection; ``--http-client httpx`` for httpx, the earlier load generator,
which also gets one row per configuration at ``--httpx-at`` clients) and each sending a
request as soon as its previous one is answered (closed loop): ``POST /api/search`` with a
PNG from the Fashion-MNIST *test* set (distinct images, encoded once in memory) and
k = 10, for --warmup seconds (not counted), then for --seconds. Every latency is
recorded; an error is a non-200 status, a body without k results, or an exception
(timeout, refused connection...); 503s (the server's queue full, ``--max-queue``) are
errors too, and counted apart. With --similar-share P, a second row per level sends that
share of its requests as ``GET /api/items/{id}/similar``.

Before the servers, the embedding speed of PyTorch against ONNX Runtime at batch 1, 8 and
32: the index's own model (the demo's small CNN) and EfficientNet-Lite0 (untrained
weights, at --effnet-size pixels), each timed for --embed-seconds per cell, in this process
with --server-threads threads.

The index: --index FOLDER, or by default the whole Fashion-MNIST training set (60,000
items) embedded with the demo checkpoint (--checkpoint runs/demo/train/best), built once
into --work (runs/bench-serve/) and reused when that folder exists; its model is exported
to ONNX once (``model/model.onnx``) so that servers start without exporting. A folder
given with --index is never written (its servers export in memory when it has no export).

The client runs on the same machine as the server, so both compete for its cores: the
numbers are a lower bound for a server with the machine to itself.

    python bench/serve_load.py                     # a-d x 10/50/100/200 clients (~10 min)
    python bench/serve_load.py --configs a b --clients 10 50 --seconds 10
    python bench/serve_load.py --clients 1 10 50 --seconds 30 --similar-share 0.2
    python bench/serve_load.py --index indexes/photos --out /tmp/serve.json

Prints markdown tables and writes bench/results/serve_load.json (with the git commit and
the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from machine import RunInfo, git_commit, machine, versions  # bench/machine.py: on sys.path

CONFIGS = {
    "a": ("one at a time, torch", ["--no-batching", "--runtime", "torch"]),
    "b": ("batching, torch", ["--runtime", "torch"]),
    "c": ("batching, onnx", ["--runtime", "onnx"]),
}
"""The fixed configurations; ``d`` (workers) is made from the faster of b and c."""


def build_index(checkpoint: Path, work: Path) -> Path:
    """The cached 60k-item Fashion-MNIST train index under ``work`` (built once), with
    its model exported to ONNX."""
    folder = work / "fashion-mnist-train"
    from lookalike.search import Index

    if folder.exists():  # Index.build moves a folder into place only once it is whole
        print(f"reusing the index {folder}", file=sys.stderr, flush=True)
    else:
        print(f"building the index {folder} with {checkpoint} (once)...", file=sys.stderr,
              flush=True)
        started = time.perf_counter()
        Index.build(checkpoint, "fashion-mnist", folder, split="train", progress=False,
                    log=lambda line: print(line, file=sys.stderr, flush=True)).close()
        print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    with Index.open(folder) as index:
        if not index.onnx_path.is_file():
            from lookalike.export import export_onnx

            export_onnx(index.model, index.onnx_path, name=str(index.store.model_dir))
            print(f"exported its model to {index.onnx_path}", file=sys.stderr, flush=True)
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
    """User + system CPU time of process ``pid`` and its live descendants (Linux /proc;
    NaN elsewhere): a server with workers is a process tree."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in children.read_text().split():
                value = cpu_seconds(int(child))
                total += 0.0 if np.isnan(value) else value
    return total


class Server:
    """``lookalike serve`` in a subprocess with ``options``, its output in a log file."""

    def __init__(self, index: Path, options: list[str], threads: int, workers: int, log: Path,
                 startup_timeout: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.command = [sys.executable, "-m", "lookalike", "serve", "--index", str(index),
                        "--port", str(self.port), *options]
        if workers > 1:
            self.command += ["--workers", str(workers)]
        each = str(max(1, threads // workers))
        self.env = dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                  "OPENBLAS_NUM_THREADS"), each)
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
        pids: set[int] = set()
        while time.perf_counter() - started < self.startup_timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}) "
                                   f"before answering; see {self.log_path}:\n{self.log_tail()}")
            try:
                answer = httpx.get(f"{self.url}/api/health", timeout=2)
                if answer.status_code == 200:
                    self.health = answer.json()
                    pids.add(int(self.health.get("pid", 0)))
                    if len(pids) >= self.workers:  # every worker is up (and has timed)
                        self.startup_s = time.perf_counter() - started
                        return self
                    continue
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"no answer from {self.workers} workers at {self.url}/api/health "
                           f"after {self.startup_timeout:g} s; see {self.log_path}")

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
        self.batches: list[int] = []
        self.errors: dict[str, int] = {}
        self.error_samples: list[str] = []

    def error(self, kind: str, sample: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.error_samples) < 5:
            self.error_samples.append(sample[:300])


@dataclass(frozen=True)
class Reply:
    status: int
    text: str
    retry_after: float


class HttpxClient:
    """One ``httpx.AsyncClient`` with one keep-alive connection (the load generator of the
    earlier tables: it costs ~0.9 CPU-ms per request on the cores the server needs)."""

    def __init__(self, url: str, timeout: float) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.client = httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout)

    async def search(self, png: bytes, name: str, k: int) -> Reply:
        answer = await self.client.post("/api/search", data={"k": str(k)},
                                        files={"image": (name, png, "image/png")})
        return self._reply(answer)

    async def get(self, path: str, params: dict[str, Any]) -> Reply:
        return self._reply(await self.client.get(path, params=params))

    @staticmethod
    def _reply(answer: httpx.Response) -> Reply:
        return Reply(answer.status_code, answer.text,
                     float(answer.headers.get("retry-after", "1")))

    async def close(self) -> None:
        await self.client.aclose()


class AiohttpClient:
    """One ``aiohttp.ClientSession`` with one connection: the same requests for about a
    quarter of httpx's CPU time (0.22 ms per request here), so that less of the shared
    cores goes to making the load."""

    def __init__(self, url: str, timeout: float) -> None:
        import aiohttp

        self.aiohttp = aiohttp
        self.session = aiohttp.ClientSession(
            url, connector=aiohttp.TCPConnector(limit=1),
            timeout=aiohttp.ClientTimeout(total=timeout))

    async def search(self, png: bytes, name: str, k: int) -> Reply:
        form = self.aiohttp.FormData()
        form.add_field("k", str(k))
        form.add_field("image", png, filename=name, content_type="image/png")
        return await self._reply(self.session.post("/api/search", data=form))

    async def get(self, path: str, params: dict[str, Any]) -> Reply:
        return await self._reply(self.session.get(path, params=params))

    @staticmethod
    async def _reply(request: Any) -> Reply:
        async with request as answer:
            return Reply(answer.status, await answer.text(),
                         float(answer.headers.get("retry-after", "1")))

    async def close(self) -> None:
        await self.session.close()


HTTP_CLIENTS = {"aiohttp": AiohttpClient, "httpx": HttpxClient}


async def client_task(client: HttpxClient | AiohttpClient, deadline: float,
                      queries: list[bytes], first: int, step: int, k: int, share: float,
                      ids: list[int], rng: random.Random, record: Recorder) -> None:
    """One client: a request as soon as the previous one is answered, until the deadline."""
    i = first
    while time.perf_counter() < deadline:
        similar = share > 0 and rng.random() < share
        started = time.perf_counter()
        try:
            if similar:
                answer = await client.get(f"/api/items/{rng.choice(ids)}/similar", {"k": k})
            else:
                answer = await client.search(queries[i % len(queries)],
                                             f"q{i % len(queries)}.png", k)
                i += step
            seconds = time.perf_counter() - started
            if answer.status != 200:
                record.error(f"HTTP {answer.status}", answer.text)
                if answer.status == 503:  # what Retry-After asks (the page would wait)
                    await asyncio.sleep(answer.retry_after)
                continue
            body = json.loads(answer.text)
            if len(body.get("results", ())) != k:
                record.error("wrong result count", answer.text)
                continue
        except Exception as exc:  # every failure is counted, none stops the run
            record.error(type(exc).__name__, f"{type(exc).__name__}: {exc}")
            continue
        record.latencies["similar" if similar else "search"].append(seconds)
        if not similar:
            record.server_seconds.append(float(body.get("seconds", float("nan"))))
            record.batches.append(int((body.get("timing") or {}).get("batch", 1)))


async def run_level(server: Server, clients: int, args: argparse.Namespace,
                    queries: list[bytes], share: float, ids: list[int],
                    http_client: str) -> tuple[Recorder, float, float, float]:
    """Warm up, then measure ``clients`` concurrent clients for --seconds: the record,
    elapsed seconds, and the CPU seconds server and client used meanwhile.

    Each client has its own session (one keep-alive connection, as each user of the page
    has): N tasks sharing one client's connection pool measured httpcore's pool more than
    the server (at 50 clients, about half the throughput and a 4x p99).
    """
    assert server.process is not None
    pid = server.process.pid
    kind = HTTP_CLIENTS[http_client]
    pool = [kind(server.url, args.request_timeout) for _ in range(clients)]
    gc.collect()
    gc.freeze()  # the generator's own full collections would stall its clients (as the server's)
    try:
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
    finally:
        gc.unfreeze()
        for client in pool:
            await client.close()
    return record, elapsed, server_cpu, client_cpu


def summarise(record: Recorder, elapsed: float, clients: int, workload: str,
              server_cpu: float, client_cpu: float) -> dict[str, Any]:
    every = np.array(record.latencies["search"] + record.latencies["similar"]) * 1000
    errors = sum(record.errors.values())
    row: dict[str, Any] = {
        "workload": workload, "clients": clients, "requests": len(every),
        "errors": errors, "rejected_503": record.errors.get("HTTP 503", 0),
        "error_kinds": record.errors, "error_samples": record.error_samples,
        "elapsed_s": elapsed, "requests_per_s": len(every) / elapsed,
        "server_cpu_per_s": server_cpu / elapsed, "client_cpu_per_s": client_cpu / elapsed}
    if len(every):
        p50, p90, p99 = np.percentile(every, [50, 90, 99])
        row.update(p50_ms=p50, p90_ms=p90, p99_ms=p99, max_ms=float(every.max()),
                   mean_ms=float(every.mean()))
    if record.server_seconds:
        row["server_search_p50_ms"] = float(np.nanmedian(record.server_seconds)) * 1000
    if record.batches:
        row["batch_mean"] = float(np.mean(record.batches))  # as each query saw it
        row["batch_max"] = int(max(record.batches))
    for kind, values in record.latencies.items():
        if values:
            ms = np.array(values) * 1000
            row[f"{kind}_requests"] = len(values)
            row[f"{kind}_p50_ms"], row[f"{kind}_p99_ms"] = np.percentile(ms, [50, 99])
    return row


def table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    mixed = any(r["workload"] != "search" for r in rows)
    header = ["config"] + ["workload"] * mixed + ["clients", "requests", "req/s", "p50 ms",
                                                  "p90 ms", "p99 ms", "max ms", "batch",
                                                  "errors (503)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        name = r["config"] + (" **best**" if r.get("best_workers") else "")
        cells = [name] + [r["workload"]] * mixed + [str(r["clients"]), str(r["requests"]),
                                                    f"{r['requests_per_s']:.1f}"]
        cells += [f"{r[key]:.0f}" if key in r else "-"
                  for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms")]
        cells.append(f"{r['batch_mean']:.1f}" if "batch_mean" in r else "-")
        cells.append(f"{r['errors']} ({r['rejected_503']})")
        lines.append("| " + " | ".join(cells) + " |")
    cpu = "; ".join(f"{r['config']} {r['clients']} ({r['http_client']}): server "
                    f"{r['server_cpu_per_s']:.2f}, client {r['client_cpu_per_s']:.2f}"
                    for r in rows if r["workload"].startswith("search"))
    lines += ["", f"`POST /api/search` (multipart PNG, 28x28 Fashion-MNIST test image, k = "
              f"{meta['k']}) against `lookalike serve` on a {meta['items']:,}-item "
              f"{meta['kind']} index, closed loop: each client sends its next request when "
              f"the previous one is answered; {meta['seconds']:g} s per row after a "
              f"{meta['warmup']:g} s warm-up. Batching: --max-batch {meta['max_batch']}, "
              f"--batch-wait-ms {meta['batch_wait_ms']:g}, --max-queue {meta['max_queue']}; "
              f"batch = mean queries per forward pass as each query saw it. Clients (one "
              f"{meta['http_client']} session each, asyncio, one process) and server (uvicorn, "
              f"OMP_NUM_THREADS={meta['server_threads']} shared out between workers) share "
              f"the same {meta['cpu_count']}-core machine, so these numbers are a lower "
              f"bound. Cores busy (CPU-s per s): {cpu}."]
    return "\n".join(lines)


def embedding_speed(index: Path, batches: list[int], seconds: float, effnet_size: int
                    ) -> list[dict[str, Any]]:
    """ms per forward pass, PyTorch and ONNX Runtime, for the index's model and an
    (untrained) EfficientNet-Lite0, at each batch size."""
    from lookalike.export import OnnxRuntime, TorchRuntime, onnx_bytes
    from lookalike.export.onnx import sample_images
    from lookalike.export.runtime import time_forward
    from lookalike.models import EmbedderConfig, build_embedder
    from lookalike.search import Index

    with Index.open(index) as opened:
        small = opened.model
    effnet = build_embedder(EmbedderConfig(backbone="efficientnet-lite0",
                                           input_size=effnet_size, in_channels=3,
                                           mean=(0.485, 0.456, 0.406),
                                           std=(0.229, 0.224, 0.225)), pretrained=False)
    rows = []
    for name, model in ((f"{small.config.backbone} (the index's, {small.config.input_size} px)",
                         small), (f"efficientnet-lite0 ({effnet_size} px)", effnet)):
        print(f"--- embedding speed: {name}", file=sys.stderr, flush=True)
        runtimes = {"torch": TorchRuntime(model.eval()), "onnx": OnnxRuntime(onnx_bytes(model))}
        for batch in batches:
            images = sample_images(model, batch)
            ms = {key: 1000 * time_forward(runtime, images, budget_s=seconds, min_reps=3,
                                           max_reps=10_000)
                  for key, runtime in runtimes.items()}
            rows.append({"model": name, "batch": batch, "torch_ms": ms["torch"],
                         "onnx_ms": ms["onnx"], "speedup": ms["torch"] / ms["onnx"],
                         "torch_images_per_s": batch * 1000 / ms["torch"],
                         "onnx_images_per_s": batch * 1000 / ms["onnx"]})
    return rows


def speed_table(rows: list[dict[str, Any]], threads: int) -> str:
    lines = ["| model | batch | PyTorch ms | ONNX Runtime ms | speed-up | PyTorch img/s | "
             "ONNX Runtime img/s |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['batch']} | {r['torch_ms']:.2f} | {r['onnx_ms']:.2f} | "
              f"{r['speedup']:.2f}x | {r['torch_images_per_s']:.0f} | "
              f"{r['onnx_images_per_s']:.0f} |" for r in rows]
    lines += ["", f"One forward pass over prepared (B, C, S, S) images, median after a warm-up "
              f"pass, {threads} threads (torch.set_num_threads; ONNX Runtime's intra-op "
              "threads set to the same)."]
    return "\n".join(lines)


def measure(name: str, key: str, options: list[str], workers: int, index: Path,
            args: argparse.Namespace, queries: list[bytes], workloads: list[tuple[str, float]]
            ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every level (and workload) against one server configuration: rows, and what the
    server was (command, health at start and end, log problems)."""
    server = Server(index, options, args.server_threads, workers,
                    args.work / f"server-{key}.log", args.startup_timeout)
    rows = []
    with server:
        print(f"=== {key}: {name}: up in {server.startup_s:.1f} s, runtime "
              f"{server.health.get('runtime')}", file=sys.stderr, flush=True)
        ids: list[int] = []
        if args.similar_share > 0:
            for _ in range(5):
                page = httpx.get(f"{server.url}/api/items", params={"random": 100}, timeout=10)
                ids += [item["id"] for item in page.json()["items"]]
        levels = [(workload, share, args.http_client, clients)
                  for workload, share in workloads for clients in args.clients]
        if args.httpx_at and args.http_client != "httpx":  # the earlier load generator
            levels.append(("search, httpx client", 0.0, "httpx", args.httpx_at))
        for workload, share, http_client, clients in levels:
            print(f"--- {key} {workload}: {clients} clients", file=sys.stderr, flush=True)
            record, elapsed, server_cpu, client_cpu = asyncio.run(
                run_level(server, clients, args, queries, share, ids, http_client))
            row = summarise(record, elapsed, clients, workload, server_cpu, client_cpu)
            row.update(config=name, config_key=key, workers=workers, http_client=http_client)
            rows.append(row)
            if record.errors:
                print(f"    errors: {record.errors} {record.error_samples[:2]}",
                      file=sys.stderr, flush=True)
        health_after = httpx.get(f"{server.url}/api/health", timeout=10).json()
        assert server.process is not None
        alive = server.process.poll() is None
    log = server.log_path.read_text(errors="replace")
    problems = [line for line in log.splitlines()
                if "Traceback" in line or "ERROR" in line or "Exception" in line]
    assert server.process is not None
    return rows, {"config": name, "key": key, "command": server.command, "env": server.env,
                  "startup_s": server.startup_s, "health_at_start": server.health,
                  "health_after": health_after, "alive_after_load": alive,
                  "exit_code": server.process.returncode, "log_problem_lines": problems[:20]}


def throughput_at(rows: list[dict[str, Any]], key: str, clients: int) -> float:
    """req/s of config ``key``'s search rows at the level nearest ``clients``."""
    mine = [r for r in rows if r["config_key"] == key and r["workload"] == "search"]
    if not mine:
        return float("nan")
    return min(mine, key=lambda r: abs(r["clients"] - clients))["requests_per_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", nargs="+", type=int, default=[10, 50, 100, 200],
                        help="concurrency levels (default 10 50 100 200)")
    parser.add_argument("--configs", nargs="+", choices=["a", "b", "c", "d"],
                        default=["a", "b", "c", "d"], help="server configurations (default "
                        "all: a one at a time, b batching+torch, c batching+onnx, d workers)")
    parser.add_argument("--workers-options", nargs="+", type=int,
                        default=[2] if (os.cpu_count() or 1) <= 2 else [2, 4],
                        help="worker counts tried for d (default 2, and 4 above 2 cores)")
    parser.add_argument("--http-client", choices=sorted(HTTP_CLIENTS), default="aiohttp",
                        help="the clients' HTTP library (default aiohttp: ~4x less CPU per "
                        "request than httpx, on the cores the server shares)")
    parser.add_argument("--httpx-at", type=int, default=50, metavar="CLIENTS",
                        help="also one row per configuration with httpx clients at this "
                        "level, the earlier load generator (default 50; 0: none)")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--batch-wait-ms", type=float, default=2.0)
    parser.add_argument("--max-queue", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per level")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="unmeasured load before each level (seconds)")
    parser.add_argument("--k", type=int, default=10, help="results per request")
    parser.add_argument("--queries", type=int, default=1000,
                        help="distinct test images sent, cycled (default 1000)")
    parser.add_argument("--similar-share", type=float, default=0.0,
                        help="also run each level with this share of GET .../similar")
    parser.add_argument("--embed-batches", nargs="*", type=int, default=[1, 8, 32],
                        help="batch sizes of the embedding-speed table (none: skip it)")
    parser.add_argument("--embed-seconds", type=float, default=1.0,
                        help="timing budget per runtime and batch size")
    parser.add_argument("--effnet-size", type=int, default=224,
                        help="EfficientNet-Lite0's input size in the speed table (default 224)")
    parser.add_argument("--index", type=Path, help="an existing index folder (default: "
                        "build the Fashion-MNIST train index into --work)")
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/demo/train/best"),
                        help="model for the default index (default runs/demo/train/best)")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-serve"),
                        help="where the default index is cached, and the server logs")
    parser.add_argument("--server-threads", type=int, default=os.cpu_count() or 1,
                        help="OMP/MKL threads of the server (default: the core count)")
    parser.add_argument("--request-timeout", type=float, default=60.0,
                        help="seconds before a request counts as an error")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/serve_load.json"))
    args = parser.parse_args(argv)
    if not 0 <= args.similar_share <= 1:
        parser.error("--similar-share must be between 0 and 1")
    if args.http_client == "aiohttp":
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            parser.error("--http-client aiohttp: aiohttp is not installed (pip install -c "
                         "constraints.txt -e '.[bench]'), or use --http-client httpx")

    import torch

    index = args.index if args.index is not None else build_index(args.checkpoint, args.work)
    run = RunInfo()
    torch.set_num_threads(args.server_threads)
    speed = (embedding_speed(index, args.embed_batches, args.embed_seconds, args.effnet_size)
             if args.embed_batches else [])
    queries = query_pngs(args.queries)
    workloads = [("search", 0.0)]
    if args.similar_share > 0:
        workloads.append((f"search + {args.similar_share:.0%} similar", args.similar_share))
    batching = ["--max-batch", str(args.max_batch), "--batch-wait-ms", str(args.batch_wait_ms),
                "--max-queue", str(args.max_queue)]
    rows: list[dict[str, Any]] = []
    servers: list[dict[str, Any]] = []
    for key in ("a", "b", "c"):
        if key in args.configs:
            name, options = CONFIGS[key]
            found, server = measure(name, key, options + batching, 1, index, args, queries,
                                    workloads)
            rows += found
            servers.append(server)
    if "d" in args.configs:
        onnx_faster = throughput_at(rows, "c", 50) > throughput_at(rows, "b", 50)
        runtime = "onnx" if onnx_faster else "torch"
        tried = []
        for workers in args.workers_options:
            key = f"d{workers}"
            found, server = measure(f"batching, {runtime}, {workers} workers", key,
                                    ["--runtime", runtime, *batching], workers, index, args,
                                    queries, workloads)
            rows += found
            servers.append(server)
            tried.append((throughput_at(rows, key, 50), key))
        best = max(tried)[1]
        for row in rows:
            row["best_workers"] = row["config_key"] == best
    meta = {"items": servers[0]["health_at_start"].get("items") if servers else None,
            "kind": servers[0]["health_at_start"].get("kind") if servers else None,
            "k": args.k, "seconds": args.seconds, "warmup": args.warmup,
            "max_batch": args.max_batch, "batch_wait_ms": args.batch_wait_ms,
            "max_queue": args.max_queue, "server_threads": args.server_threads,
            "http_client": args.http_client,
            "cpu_count": os.cpu_count()}
    from lookalike.files import write_json
    problems = [line for server in servers for line in server["log_problem_lines"]]
    write_json(args.out, {
        "git_commit": git_commit(),
        "config": {**meta, "clients": args.clients, "configs": args.configs,
                   "workers_options": args.workers_options, "queries": args.queries,
                   "similar_share": args.similar_share, "request_timeout": args.request_timeout,
                   "seed": args.seed, "index": str(index),
                   "checkpoint": str(args.checkpoint) if args.index is None else None},
        "servers": servers,
        "client": (f"one process: asyncio, one {args.http_client} session (one keep-alive "
                   "connection) per client, closed loop"),
        "note": "client and server share the machine's cores: a lower bound",
        "machine": machine(versions(("torch", "onnxruntime", "onnx", "faiss-cpu", "fastapi",
                                     "uvicorn", "httptools", "uvloop", "httpx", "aiohttp",
                                     "numpy"))),
        **run.info(run.seconds()), "embedding_speed": speed, "rows": rows})
    if speed:
        print(speed_table(speed, args.server_threads) + "\n")
    if rows:
        print(table(rows, meta))
    print(f"\nwrote {args.out}; server logs in {args.work}"
          + (f" ({len(problems)} error lines)" if problems else ""))
    unexpected = [r for r in rows if r["errors"] - r["rejected_503"]]
    return 1 if unexpected or problems else 0


if __name__ == "__main__":
    sys.exit(main())

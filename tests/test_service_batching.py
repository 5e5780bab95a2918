"""Dynamic batching, the bounded queue, and what the server reports about them.

``MicroBatcher`` alone first (a plain function as the batch, so what it was given is known
exactly), then through the app: concurrent uploads share forward passes and still get
what a one-at-a-time server gives them, a lone upload waits no longer than the bound, a
full queue answers 503 with Retry-After, and /api/health and /metrics describe it all.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from lookalike.cli import build_parser
from lookalike.export import Runtime
from lookalike.search import Index
from lookalike.service import ServiceSettings, create_app
from lookalike.service import factory as factory_module
from lookalike.service import server as server_module
from lookalike.service.batcher import BatchInfo, MicroBatcher, QueueFull
from lookalike.service.metrics import endpoint_of

from .service_fixtures import CLASSES, PER_CLASS, build_tiny_index, item_path

ITEMS = CLASSES * PER_CLASS
WAIT_SLACK_S = 0.25
"""Scheduling noise allowed on top of a wait bound (a busy 2-core CI machine)."""


# -- the batcher alone -------------------------------------------------------------------


class Recorder:
    """A batch function that records each batch and answers item * 10 (or fails on -1)."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate = gate

    def __call__(self, items: list[int]) -> list[int | BaseException]:
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        self.batches.append(list(items))
        return [ValueError(f"bad item {i}") if i == -1 else i * 10 for i in items]


@pytest.fixture
def make_batcher() -> Iterator[Callable[..., MicroBatcher[int, int]]]:
    made: list[MicroBatcher[int, int]] = []

    def make(run: Callable[[list[int]], Any], **options: Any) -> MicroBatcher[int, int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, **options)
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.close()


def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.002)


def test_a_full_batch_leaves_at_once(make_batcher: Callable[..., MicroBatcher[int, int]]
                                     ) -> None:
    run = Recorder()
    batcher = make_batcher(run, max_batch=8, max_wait_s=5.0)
    started = time.monotonic()
    futures = [batcher.submit(i) for i in range(8)]
    assert [f.result(timeout=5) for f in futures] == [i * 10 for i in range(8)]
    assert time.monotonic() - started < 5.0 - WAIT_SLACK_S  # full: no waiting for the bound
    assert run.batches == [list(range(8))]  # arrival order, one call


def test_items_beyond_max_batch_go_in_the_next_batch(
        make_batcher: Callable[..., MicroBatcher[int, int]]) -> None:
    gate = threading.Event()
    run = Recorder(gate)
    batcher = make_batcher(run, max_batch=3, max_wait_s=0.0)
    first = batcher.submit(0)
    until(lambda: batcher.running == 1)  # the first batch holds item 0 alone
    rest = [batcher.submit(i) for i in range(1, 8)]
    assert batcher.waiting == 7
    gate.set()
    assert [f.result(timeout=5) for f in [first, *rest]] == [i * 10 for i in range(8)]
    assert run.batches == [[0], [1, 2, 3], [4, 5, 6], [7]]


@pytest.mark.parametrize("wait_s", [0.0, 0.05, 0.2])
def test_a_lone_item_waits_at_most_the_bound(
        make_batcher: Callable[..., MicroBatcher[int, int]], wait_s: float) -> None:
    infos: list[BatchInfo] = []
    batcher = make_batcher(Recorder(), max_batch=32, max_wait_s=wait_s, on_batch=infos.append)
    started = time.monotonic()
    assert batcher.submit(4).result(timeout=5) == 40
    elapsed = time.monotonic() - started
    assert elapsed < wait_s + WAIT_SLACK_S
    assert elapsed >= wait_s * 0.9  # alone, it does wait for company, up to the bound
    until(lambda: len(infos) == 1)
    assert infos[0].size == 1 and infos[0].waited_s <= wait_s + WAIT_SLACK_S


def test_queue_overflow_raises_at_once(make_batcher: Callable[..., MicroBatcher[int, int]]
                                       ) -> None:
    gate = threading.Event()
    batcher = make_batcher(Recorder(gate), max_batch=1, max_wait_s=0.0, max_queue=2)
    running = batcher.submit(1)
    until(lambda: batcher.running == 1)
    queued = [batcher.submit(2), batcher.submit(3)]
    started = time.monotonic()
    with pytest.raises(QueueFull, match="2 queries are waiting"):
        batcher.submit(4)
    assert time.monotonic() - started < 0.1  # refused, not held
    gate.set()
    assert [f.result(timeout=5) for f in [running, *queued]] == [10, 20, 30]
    assert batcher.submit(5).result(timeout=5) == 50  # room again


def test_failures_reach_their_own_callers_only(
        make_batcher: Callable[..., MicroBatcher[int, int]]) -> None:
    batcher = make_batcher(Recorder(), max_batch=3, max_wait_s=1.0)
    good, bad, other = (batcher.submit(i) for i in (1, -1, 2))
    assert good.result(timeout=5) == 10 and other.result(timeout=5) == 20
    with pytest.raises(ValueError, match="bad item -1"):
        bad.result(timeout=5)


def test_a_failing_batch_fails_its_callers_and_the_worker_goes_on(
        make_batcher: Callable[..., MicroBatcher[int, int]]) -> None:
    calls: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("model crashed")
        return items

    batcher = make_batcher(run, max_batch=2, max_wait_s=1.0)
    broken = [batcher.submit(1), batcher.submit(2)]
    for future in broken:
        with pytest.raises(RuntimeError, match="model crashed"):
            future.result(timeout=5)
    assert batcher.submit(3).result(timeout=5) == 3


def test_a_wrong_number_of_results_is_an_error_not_a_hang(
        make_batcher: Callable[..., MicroBatcher[int, int]]) -> None:
    batcher = make_batcher(lambda items: items[:1], max_batch=2, max_wait_s=1.0)
    futures = [batcher.submit(1), batcher.submit(2)]
    for future in futures:
        with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
            future.result(timeout=5)


def test_cancelled_items_are_dropped_before_their_batch_runs(
        make_batcher: Callable[..., MicroBatcher[int, int]]) -> None:
    gate = threading.Event()
    run = Recorder(gate)
    batcher = make_batcher(run, max_batch=4, max_wait_s=0.0)
    first = batcher.submit(0)
    until(lambda: batcher.running == 1)
    kept, dropped = batcher.submit(1), batcher.submit(2)
    assert dropped.cancel()
    gate.set()
    assert first.result(timeout=5) == 0 and kept.result(timeout=5) == 10
    with pytest.raises(CancelledError):
        dropped.result()
    assert run.batches == [[0], [1]]


def test_asyncio_callers_are_batched_together(
        make_batcher: Callable[..., MicroBatcher[int, int]]) -> None:
    run = Recorder()
    batcher = make_batcher(run, max_batch=8, max_wait_s=5.0)

    async def many() -> list[int]:
        return list(await asyncio.gather(*(batcher(i) for i in range(8))))

    assert asyncio.run(many()) == [i * 10 for i in range(8)]
    assert run.batches == [list(range(8))]


def test_close_runs_what_is_queued_then_refuses(
        make_batcher: Callable[..., MicroBatcher[int, int]]) -> None:
    batcher = make_batcher(Recorder(), max_batch=4, max_wait_s=10.0)
    future: Future[int] = batcher.submit(7)
    batcher.close()
    assert future.result(timeout=5) == 70
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(8)


# -- through the app ---------------------------------------------------------------------


class CountingRuntime:
    """Wraps the index's runtime: counts forward passes and their sizes; ``gate`` holds
    each pass until it is set."""

    def __init__(self, inner: Runtime, gate: threading.Event | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.sizes: list[int] = []
        self.gate = gate

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        self.sizes.append(len(images))
        return self.inner(images)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    index = build_tiny_index(tmp_path_factory.mktemp("batching"))
    yield index
    index.close()


@pytest.fixture
def counting(index: Index) -> Iterator[CountingRuntime]:
    original = index.embedder
    runtime = CountingRuntime(original)
    index.use_embedder(runtime)
    yield runtime
    index.use_embedder(original)


@pytest.fixture(scope="module")
def uploads(index: Index) -> list[bytes]:
    return [item_path(index, i).read_bytes() for i in range(ITEMS)]


def post(client: TestClient, data: bytes, k: int = 4, name: str = "q.png") -> httpx.Response:
    return client.post("/api/search", files={"image": (name, data, "image/png")},
                       data={"k": str(k)})


def concurrently(ask: Callable[[int], Any], jobs: list[int]) -> list[Any]:
    """``ask(job)`` for every job, each in its own thread, all released at once."""
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def worker(position: int) -> None:
        try:
            start.wait()
            results[position] = ask(jobs[position])
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(p,)) for p in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors[0]
    return results


def answers(response: httpx.Response) -> list[tuple[int, float]]:
    assert response.status_code == 200, response.text
    return [(r["id"], r["distance"]) for r in response.json()["results"]]


def test_concurrent_uploads_share_forward_passes_and_match_one_at_a_time(
        index: Index, counting: CountingRuntime, uploads: list[bytes]) -> None:
    jobs = [3, 7, 11, 0, 19, 5, 23, 14]
    serial_settings = ServiceSettings(batching=False)
    with TestClient(create_app(index, serial_settings)) as serial:
        expected = [answers(post(serial, uploads[i], k=4 + i % 2)) for i in jobs]
    assert counting.sizes == [1] * len(jobs)  # one at a time: one pass each
    counting.sizes.clear()

    batched_settings = ServiceSettings(max_batch=8, batch_wait_ms=500)
    with TestClient(create_app(index, batched_settings)) as client:
        responses = concurrently(lambda i: post(client, uploads[i], k=4 + i % 2), jobs)
    assert len(counting.sizes) < len(jobs) and sum(counting.sizes) == len(jobs)
    assert max(counting.sizes) > 1
    for i, response, alone in zip(jobs, responses, expected, strict=True):
        found = answers(response)
        assert [item for item, _ in found] == [item for item, _ in alone]  # k = 4 or 5
        np.testing.assert_allclose([d for _, d in found], [d for _, d in alone], atol=1e-5)
        assert found[0][0] == i
        timing = response.json()["timing"]
        assert 1 <= timing["batch"] <= 8 and timing["runtime"] == "torch"
        assert min(timing[key] for key in ("decode_ms", "wait_ms", "embed_ms",
                                           "search_ms")) >= 0


def test_a_bad_upload_fails_alone_and_the_rest_of_its_batch_is_answered(
        index: Index, counting: CountingRuntime, uploads: list[bytes]) -> None:
    """Uploads are decoded in the batch (by the batcher's decoding threads): one that
    does not decode, or asks for a k out of range, gets its own error, not its batch."""
    jobs = [0, 1, 2, 3]  # 1: not an image, 2: k out of range
    settings = ServiceSettings(max_batch=4, batch_wait_ms=1000)

    def ask(i: int) -> httpx.Response:
        if i == 1:
            return post(client, b"not an image", name="notes.png")
        return post(client, uploads[i], k=10**6 if i == 2 else 3)

    with TestClient(create_app(index, settings)) as client:
        responses = concurrently(ask, jobs)
    assert [r.status_code for r in responses] == [200, 415, 422, 200]
    assert "notes.png" in responses[1].json()["detail"]
    assert responses[2].json()["detail"].startswith("k: must be between 1 and")
    assert counting.sizes == [2]  # the two good ones, in one pass
    for i in (0, 3):
        assert answers(responses[i])[0][0] == i
        assert responses[i].json()["timing"]["batch"] == 2


@pytest.mark.parametrize("wait_ms", [0.0, 50.0])
def test_a_lone_upload_is_answered_within_the_wait_bound(index: Index, uploads: list[bytes],
                                                         wait_ms: float) -> None:
    with TestClient(create_app(index, ServiceSettings(batch_wait_ms=wait_ms))) as client:
        post(client, uploads[0])  # warm
        response = post(client, uploads[1])
    answer = response.json()
    assert answer["results"][0]["id"] == 1
    assert answer["timing"]["batch"] == 1
    assert answer["timing"]["wait_ms"] <= wait_ms + WAIT_SLACK_S * 1000
    assert answer["seconds"] * 1000 <= wait_ms + WAIT_SLACK_S * 1000


@pytest.mark.parametrize("batching", [True, False])
def test_a_full_queue_is_503_with_retry_after(index: Index, uploads: list[bytes],
                                              batching: bool) -> None:
    gate = threading.Event()
    original = index.embedder
    blocked = CountingRuntime(original, gate)
    index.use_embedder(blocked)
    settings = ServiceSettings(batching=batching, max_batch=1, batch_wait_ms=0, max_queue=1,
                               retry_after_s=3)
    try:
        with TestClient(create_app(index, settings)) as client:
            queue = lambda: client.get("/api/health").json()["queue"]  # noqa: E731
            held: list[httpx.Response] = []
            threads = [threading.Thread(target=lambda i=i: held.append(post(client, uploads[i])))
                       for i in (0, 1)]
            threads[0].start()
            until(lambda: queue()["running"] == 1)  # in the forward pass, held by the gate
            threads[1].start()
            until(lambda: queue()["waiting"] == 1)  # the queue is full now
            started = time.monotonic()
            refused = post(client, uploads[2])
            assert time.monotonic() - started < 5  # refused at once, never held
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "3"
            detail = refused.json()["detail"]
            assert refused.json() == {"detail": detail} and "\n" not in detail
            assert "busy" in detail
            gate.set()
            for thread in threads:
                thread.join(timeout=30)
            assert [r.status_code for r in held] == [200, 200]
            health = client.get("/api/health").json()
            assert health["queue"] == {"waiting": 0, "running": 0, "limit": 1, "rejected": 1}
            text = client.get("/metrics").text
            assert 'lookalike_requests_total{endpoint="search",status="503"} 1' in text
            assert 'lookalike_errors_total{status="503"} 1' in text
            assert "lookalike_queue_rejected_total 1" in text
    finally:
        gate.set()
        index.use_embedder(original)


# -- what the server reports -------------------------------------------------------------

SAMPLE = re.compile(r'^([a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.e+-]+)$')


def parse_exposition(text: str) -> dict[str, dict[str, float]]:
    """The Prometheus text format, strictly: every sample's family has HELP and TYPE
    lines before it; returns family -> {sample with labels: value}."""
    families: dict[str, dict[str, float]] = {}
    declared: dict[str, str] = {}
    helped: set[str] = set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge", "histogram") and name in helped
            declared[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, line
            name = match.group(1)
            family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in declared else name
            assert family in declared, line
            families.setdefault(family, {})[name + (match.group(2) or "")] = float(match.group(4))
    return families


def check_histogram(samples: dict[str, float], family: str, labels: str = "") -> float:
    """Buckets cumulative, +Inf == count; returns the count."""
    prefix = f"{family}_bucket{{{labels + ',' if labels else ''}le="
    buckets = [(key, value) for key, value in samples.items() if key.startswith(prefix)]
    values = [value for _, value in buckets]
    assert values == sorted(values) and buckets[-1][0].endswith('le="+Inf"}')
    suffix = f"{{{labels}}}" if labels else ""
    assert samples[f"{family}_count{suffix}"] == values[-1]
    return values[-1]


def test_metrics_and_health_describe_the_load(index: Index, uploads: list[bytes]) -> None:
    settings = ServiceSettings(max_batch=4, batch_wait_ms=200, max_queue=50)
    with TestClient(create_app(index, settings)) as client:
        concurrently(lambda i: answers(post(client, uploads[i])), list(range(8)))
        assert post(client, b"not an image", name="notes.png").status_code == 415
        assert client.get("/api/items/3/similar", params={"k": 2}).status_code == 200
        health = client.get("/api/health").json()
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = parse_exposition(response.text)
    requests = families["lookalike_requests_total"]
    assert requests['lookalike_requests_total{endpoint="search",status="200"}'] == 8
    assert requests['lookalike_requests_total{endpoint="search",status="415"}'] == 1
    assert families["lookalike_errors_total"] == {'lookalike_errors_total{status="415"}': 1}
    latency = families["lookalike_request_duration_seconds"]
    assert check_histogram(latency, "lookalike_request_duration_seconds",
                           'endpoint="search"') == 9
    batches = families["lookalike_batch_size"]
    assert check_histogram(batches, "lookalike_batch_size") < 8  # shared passes
    assert batches["lookalike_batch_size_sum"] == 8
    assert families["lookalike_queue_length"] == {"lookalike_queue_length": 0}
    assert families["lookalike_queue_limit"] == {"lookalike_queue_limit": 50}
    assert families["lookalike_index_items"] == {"lookalike_index_items": ITEMS}

    assert health["queue"] == {"waiting": 0, "running": 0, "limit": 50, "rejected": 0}
    batching = health["batching"]
    assert batching["enabled"] is True and batching["max_batch"] == 4
    assert batching["wait_ms"] == 200
    assert batching["window"] < 8 and 1 < batching["mean"] <= batching["max"] <= 4
    latency_ms = health["latency_ms"]
    assert latency_ms["window"] == 9  # 8 uploads and the similar; not the refused one
    assert 0 < latency_ms["p50"] <= latency_ms["p90"] <= latency_ms["p99"]
    assert health["runtime"] == {"runtime": "torch"}


@pytest.mark.parametrize(("path", "endpoint"), [
    ("/api/search", "search"), ("/api/items", "items"), ("/api/items/12", "item"),
    ("/api/items/12/image", "image"), ("/api/items/12/similar", "similar"),
    ("/api/items/12/other", "other"), ("/api/health", "health"), ("/metrics", "metrics"),
    ("/", "page"), ("/static/app.js", "static"), ("/docs", "docs"), ("/etc/passwd", "other"),
])
def test_endpoint_labels_are_a_fixed_set(path: str, endpoint: str) -> None:
    assert endpoint_of(path) == endpoint


# -- options, workers --------------------------------------------------------------------


def test_serve_options_reach_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from lookalike.cli import main

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(server_module, "serve", lambda path, **options: seen.append(options))
    assert main(["serve", "--index", "X", "--max-batch", "16", "--batch-wait-ms", "0",
                 "--max-queue", "9", "--workers", "3", "--runtime", "torch"]) == 0
    assert main(["serve", "--index", "X", "--no-batching"]) == 0
    first, second = seen
    assert (first["workers"], first["runtime"]) == (3, "torch")
    assert first["settings"].max_batch == 16 and first["settings"].batch_wait_ms == 0
    assert first["settings"].max_queue == 9 and first["settings"].batching
    assert not second["settings"].batching and second["runtime"] == "auto"
    defaults = build_parser().parse_args(["serve", "--index", "X"])
    assert (defaults.max_batch, defaults.batch_wait_ms, defaults.workers) == (
        ServiceSettings().max_batch, ServiceSettings().batch_wait_ms, 1)
    assert defaults.host == "127.0.0.1"


@pytest.mark.parametrize("argv", [["--max-batch", "0"], ["--batch-wait-ms", "-1"],
                                  ["--max-queue", "0"], ["--workers", "0"],
                                  ["--runtime", "tensorrt"]])
def test_bad_serve_options_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve", "--index", "X", *argv])
    assert exit_info.value.code == 2


def test_several_workers_are_started_from_the_factory(
        index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    ran: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.append((app, options)))
    monkeypatch.setenv(server_module.ENV, "")  # serve sets it; restored (unset) afterwards
    threads = torch.get_num_threads()
    settings = ServiceSettings(max_batch=8)
    server_module.serve(Path(index.path), port=8124, workers=2, runtime="torch",
                        settings=settings, log=lambda _: None)
    (app, options), = ran
    assert app == "lookalike.service.factory:app_from_env"
    assert options == {"factory": True, "workers": 2, "host": "127.0.0.1", "port": 8124,
                       "log_level": "warning"}

    # what each worker then does: its own index handle and app, from the environment, and
    # its startup objects kept out of the collector's full passes
    gc.unfreeze()
    try:
        app = factory_module.app_from_env()
        assert gc.get_freeze_count() > 10_000  # the model, the index, the libraries
        with TestClient(app) as client:
            health = client.get("/api/health").json()
            assert health["items"] == ITEMS and health["batching"]["max_batch"] == 8
            assert health["pid"] == os.getpid()
            assert answers(post(client, item_path(index, 2).read_bytes()))[0][0] == 2
    finally:
        torch.set_num_threads(threads)  # the factory shares the cores out between workers
        gc.unfreeze()  # a test process goes on creating and dropping objects


def test_the_factory_needs_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from lookalike.errors import ConfigError

    monkeypatch.delenv(server_module.ENV, raising=False)
    with pytest.raises(ConfigError, match="LOOKALIKE_SERVE"):
        factory_module.app_from_env()


def test_worker_threads_share_out_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = os.cpu_count() or 1
    assert factory_module.worker_threads(1) == cores
    assert factory_module.worker_threads(cores * 2) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert factory_module.worker_threads(2) == 3

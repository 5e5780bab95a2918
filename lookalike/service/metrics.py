"""What the server measures: request counts and latencies, batch sizes, the queue.

``ServiceMetrics`` keeps cumulative counters and histograms for ``GET /metrics`` (the
Prometheus text format, version 0.0.4, written by hand: a few lines, no dependency) and a
sliding window of recent searches and batches for ``GET /api/health`` (p50/p90/p99
latency, mean and largest batch). ``MetricsMiddleware`` times every request from its
arrival to the end of its answer. With several worker processes each keeps its own: a
scrape or a health check describes the worker that answered it.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.service.batcher import BatchInfo

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0)
"""Upper bounds (seconds) of the request-latency histogram's buckets."""
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SEARCHES = ("search", "similar")
"""The endpoints whose latencies make the health check's recent percentiles."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def endpoint_of(path: str) -> str:
    """A request path -> one of a fixed set of names (ids never become labels)."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "items"]:
        if len(parts) == 2:
            return "items"
        if len(parts) == 3:
            return "item"
        if len(parts) == 4 and parts[3] in ("image", "similar"):
            return parts[3]
        return "other"
    named = {"api/search": "search", "api/health": "health", "metrics": "metrics", "": "page",
             "docs": "docs", "openapi.json": "docs", "redoc": "docs"}
    if path.strip("/") in named:
        return named[path.strip("/")]
    return "static" if parts[0] == "static" else "other"


class Histogram:
    """Cumulative counts per upper bound, their sum and count (Prometheus' histogram)."""

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # the first bound >= value (Prometheus' "le"); bisect, not np.searchsorted: this
        # runs on the event loop for every request, and numpy's call costs 30x more
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def lines(self, name: str, labels: str = "") -> list[str]:
        joined = f"{labels}," if labels else ""
        cumulative = np.cumsum(self.counts).tolist()
        out = [f'{name}_bucket{{{joined}le="{bound:g}"}} {count}'
               for bound, count in zip(self.bounds, cumulative, strict=False)]
        out.append(f'{name}_bucket{{{joined}le="+Inf"}} {cumulative[-1]}')
        suffix = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{suffix} {self.sum:.6f}", f"{name}_count{suffix} {cumulative[-1]}"]
        return out


def _percentiles(values: Iterable[float]) -> dict[str, float | None]:
    array = np.fromiter(values, dtype=np.float64)
    if not len(array):
        return {"p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.percentile(array, [50, 90, 99]) * 1000
    return {"p50": round(float(p50), 3), "p90": round(float(p90), 3),
            "p99": round(float(p99), 3)}


class ServiceMetrics:
    """Thread-safe counters and windows; see the module docstring."""

    def __init__(self, window: int = 1000) -> None:
        self.window = window
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.latency: dict[str, Histogram] = {}
        self.batch_sizes = Histogram(BATCH_BUCKETS)
        self.rejected = 0
        self._recent_latency: deque[float] = deque(maxlen=window)
        self._recent_batches: deque[int] = deque(maxlen=window)
        self.started = time.time()

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[endpoint, status] += 1
            self.latency.setdefault(endpoint, Histogram(LATENCY_BUCKETS)).observe(seconds)
            if endpoint in SEARCHES and status < 400:
                self._recent_latency.append(seconds)

    def observe_batch(self, info: BatchInfo) -> None:
        with self._lock:
            self.batch_sizes.observe(info.size)
            self._recent_batches.append(info.size)

    def reject(self) -> None:
        with self._lock:
            self.rejected += 1

    def recent(self) -> dict[str, Any]:
        """The health check's window: latency percentiles (ms) of the last searches, and
        the mean and largest of the last batches."""
        with self._lock:
            latencies = list(self._recent_latency)
            batches = list(self._recent_batches)
        return {"latency_ms": {"window": len(latencies), **_percentiles(latencies)},
                "batch_size": {"window": len(batches),
                               "mean": round(float(np.mean(batches)), 3) if batches else None,
                               "max": max(batches) if batches else None}}

    def exposition(self, gauges: Mapping[str, tuple[str, float]]) -> str:
        """The Prometheus text format: counters and histograms, then ``gauges`` (name ->
        (help, value))."""
        with self._lock:
            requests = sorted(self.requests.items())
            latency = sorted(self.latency.items())
            batch_lines = self.batch_sizes.lines("lookalike_batch_size")
            rejected = self.rejected
        errors: Counter[int] = Counter()
        for (_, status), count in requests:
            if status >= 400:
                errors[status] += count
        lines = ["# HELP lookalike_requests_total Requests answered, by endpoint and status.",
                 "# TYPE lookalike_requests_total counter"]
        lines += [f'lookalike_requests_total{{endpoint="{e}",status="{s}"}} {n}'
                  for (e, s), n in requests]
        lines += ["# HELP lookalike_errors_total Answers with a 4xx or 5xx status, by status.",
                  "# TYPE lookalike_errors_total counter"]
        lines += [f'lookalike_errors_total{{status="{s}"}} {n}' for s, n in sorted(errors.items())]
        lines += ["# HELP lookalike_request_duration_seconds Time from a request's arrival "
                  "to the end of its answer.",
                  "# TYPE lookalike_request_duration_seconds histogram"]
        for endpoint, histogram in latency:
            lines += histogram.lines("lookalike_request_duration_seconds",
                                     f'endpoint="{endpoint}"')
        lines += ["# HELP lookalike_batch_size Queries embedded per forward pass.",
                  "# TYPE lookalike_batch_size histogram", *batch_lines,
                  "# HELP lookalike_queue_rejected_total Searches refused with 503 because "
                  "the queue was full.",
                  "# TYPE lookalike_queue_rejected_total counter",
                  f"lookalike_queue_rejected_total {rejected}"]
        for name, (help_text, value) in gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """ASGI middleware: each HTTP request's endpoint, status and time go to ``metrics``."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.observe_request(endpoint_of(scope.get("path", "")), status,
                                         time.perf_counter() - started)

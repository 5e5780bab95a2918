"""Search by upload, the two ways the server can run it: one at a time, or batched.

Both decode and resize the upload in a worker thread (never on the event loop), then:

- ``SerialSearcher``: each query is embedded alone, under a lock (one forward pass at a
  time), then searched; what ``lookalike serve --no-batching`` runs.
- ``BatchingSearcher``: queries go through a ``MicroBatcher``; each batch is embedded in
  one forward pass and searched as one FAISS batch per distinct k (so every query gets
  exactly what a search of its own would give).

Either way at most ``max_queue`` searches wait for the model; one more raises
``QueueFull`` (503). Each answer says where its time went (``Timing``).
"""

from __future__ import annotations

import io
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from starlette.concurrency import run_in_threadpool

from lookalike.data import decode_image
from lookalike.export.runtime import ChosenRuntime
from lookalike.search import Hit, Index
from lookalike.search.queries import query_batch
from lookalike.service.batcher import MicroBatcher, QueueFull
from lookalike.service.metrics import ServiceMetrics
from lookalike.service.schemas import Timing
from lookalike.service.settings import ServiceSettings


@dataclass(frozen=True)
class Answer:
    hits: list[Hit]
    timing: Timing


@dataclass(frozen=True)
class Prepared:
    """A decoded upload, (1, C, S, S) in [0, 1], with its k and when it was queued."""

    images: torch.Tensor
    k: int
    decode_s: float
    queued: float


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class Searcher:
    """Decoding, and what both ways share; ``search`` is each one's own."""

    def __init__(self, index: Index, settings: ServiceSettings, metrics: ServiceMetrics) -> None:
        self.index = index
        self.settings = settings
        self.metrics = metrics

    def prepare(self, data: bytes, name: str, k: int) -> Prepared:
        """Decode (pixel cap first) and resize as the collection was (worker thread)."""
        started = time.perf_counter()
        config = self.index.model.config
        image = decode_image(io.BytesIO(data), max_pixels=self.settings.max_pixels, name=name)
        images = query_batch(image, config.input_size, config.in_channels)
        done = time.perf_counter()
        return Prepared(images, k, done - started, done)

    def runtime_name(self, batch: int) -> str:
        embedder = self.index.embedder
        if isinstance(embedder, ChosenRuntime):
            return embedder.runtime_for(batch).name
        return embedder.name

    async def search(self, data: bytes, name: str, k: int) -> Answer:
        raise NotImplementedError

    @property
    def waiting(self) -> int:
        return 0

    @property
    def running(self) -> int:
        return 0

    def close(self) -> None:
        """Stop any worker thread (the app's shutdown)."""


class SerialSearcher(Searcher):
    """One query per forward pass, under a lock (the server before batching)."""

    def __init__(self, index: Index, settings: ServiceSettings, metrics: ServiceMetrics) -> None:
        super().__init__(index, settings, metrics)
        self._model_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._waiting = 0
        self._running = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def running(self) -> int:
        return self._running

    def _run(self, prepared: Prepared, ticket: list[bool]) -> Answer:
        with self._model_lock:
            started = time.perf_counter()
            with self._count_lock:
                ticket[0] = True  # counted out of the waiting
                self._waiting -= 1
                self._running = 1
            try:
                vectors = self.index.embedder(prepared.images)
            finally:
                with self._count_lock:
                    self._running = 0
        embedded = time.perf_counter()
        hits = self.index.search_embeddings(vectors, prepared.k)[0]
        return Answer(hits, Timing(decode_ms=_ms(prepared.decode_s),
                                   wait_ms=_ms(started - prepared.queued),
                                   embed_ms=_ms(embedded - started),
                                   search_ms=_ms(time.perf_counter() - embedded), batch=1,
                                   runtime=self.runtime_name(1)))

    async def search(self, data: bytes, name: str, k: int) -> Answer:
        prepared = await run_in_threadpool(self.prepare, data, name, k)
        with self._count_lock:
            if self._waiting >= self.settings.max_queue:
                raise QueueFull(self._waiting)
            self._waiting += 1
        ticket = [False]  # set when _run takes the query out of the waiting
        try:
            return await run_in_threadpool(self._run, prepared, ticket)
        finally:
            with self._count_lock:
                if not ticket[0]:  # cancelled before it reached a thread
                    self._waiting -= 1


class BatchingSearcher(Searcher):
    """Concurrent queries embedded together (``MicroBatcher``), searched per distinct k."""

    def __init__(self, index: Index, settings: ServiceSettings, metrics: ServiceMetrics) -> None:
        super().__init__(index, settings, metrics)
        self._batcher: MicroBatcher[Prepared, Answer] | None = None
        self._lock = threading.Lock()

    @property
    def batcher(self) -> MicroBatcher[Prepared, Answer]:
        """Started on first use (and again after ``close``: a test client may start the
        app twice)."""
        with self._lock:
            if self._batcher is None:
                self._batcher = MicroBatcher(
                    self._run, max_batch=self.settings.max_batch,
                    max_wait_s=self.settings.batch_wait_ms / 1000,
                    max_queue=self.settings.max_queue, on_batch=self.metrics.observe_batch)
            return self._batcher

    @property
    def waiting(self) -> int:
        return 0 if self._batcher is None else self._batcher.waiting

    @property
    def running(self) -> int:
        return 0 if self._batcher is None else self._batcher.running

    def _run(self, batch: list[Prepared]) -> Sequence[Answer | BaseException]:
        """One forward pass for the whole batch, then one search per distinct k."""
        started = time.perf_counter()
        vectors = self.index.embedder(torch.cat([p.images for p in batch]))  # (B, D)
        embedded = time.perf_counter()
        runtime = self.runtime_name(len(batch))
        by_k: dict[int, list[int]] = defaultdict(list)
        for position, prepared in enumerate(batch):
            by_k[prepared.k].append(position)
        answers: list[Answer | BaseException] = [RuntimeError("not searched")] * len(batch)
        for k, positions in by_k.items():
            searched = time.perf_counter()
            try:
                rows = self.index.search_embeddings(vectors[positions], k)
            except Exception as exc:  # e.g. k above an index shrunk meanwhile: these only
                for position in positions:
                    answers[position] = exc
                continue
            search_s = time.perf_counter() - searched
            for position, hits in zip(positions, rows, strict=True):
                prepared = batch[position]
                answers[position] = Answer(hits, Timing(
                    decode_ms=_ms(prepared.decode_s), wait_ms=_ms(started - prepared.queued),
                    embed_ms=_ms(embedded - started), search_ms=_ms(search_s),
                    batch=len(batch), runtime=runtime))
        return answers

    async def search(self, data: bytes, name: str, k: int) -> Answer:
        prepared = await run_in_threadpool(self.prepare, data, name, k)
        return await self.batcher(prepared)

    def close(self) -> None:
        with self._lock:
            batcher, self._batcher = self._batcher, None
        if batcher is not None:
            batcher.close()


def create_searcher(index: Index, settings: ServiceSettings,
                    metrics: ServiceMetrics) -> Searcher:
    """The way ``settings.batching`` asks for."""
    kind = BatchingSearcher if settings.batching else SerialSearcher
    return kind(index, settings, metrics)

"""Search by upload, the two ways the server can run it: one at a time, or batched.

Each query follows the index folder (``Index.refresh``: a generation committed by another
process is loaded first), gets its k chosen and its upload decoded and resized, never on
the event loop, then:

- ``SerialSearcher``: each upload is decoded in the thread pool and embedded alone, under
  a lock (one forward pass at a time), then searched; ``lookalike serve --no-batching``.
- ``BatchingSearcher``: uploads go through a ``MicroBatcher`` as they arrived; each batch
  is decoded by the batcher's own decoding threads, embedded in one forward pass and
  searched as one FAISS batch per distinct k (so every query gets exactly what a search of
  its own would give). The event loop hands a query over once and hears back once: a hop
  to the thread pool before the batcher cost about 12% of the throughput under 50 clients
  (README, serving), as each hop waits for the loop's next turn.

Either way at most ``max_queue`` searches wait for the model; one more raises
``QueueFull`` (503). Each answer says where its time went (``Timing``).
"""

from __future__ import annotations

import io
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from fastapi import HTTPException
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
    k: int
    hits: list[Hit]
    timing: Timing


@dataclass(frozen=True)
class Upload:
    """A query as it arrived: the file's bytes and name, the k asked for (None: the
    default), and when it was queued."""

    data: bytes
    name: str
    k: int | None
    queued: float


@dataclass(frozen=True)
class Prepared:
    """A decoded upload, (1, C, S, S) in [0, 1], with its k and when it was ready."""

    images: torch.Tensor
    k: int
    decode_s: float
    ready: float


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class Searcher:
    """Decoding, and what both ways share; ``search`` is each one's own."""

    def __init__(self, index: Index, settings: ServiceSettings, metrics: ServiceMetrics) -> None:
        self.index = index
        self.settings = settings
        self.metrics = metrics

    def choose_k(self, k: int | None, room: int) -> int:
        """The k asked for (default if none), within limits, at most ``room`` (the items
        a search can return)."""
        k = self.settings.default_k if k is None else k
        if not 1 <= k <= self.settings.max_k:
            raise HTTPException(422, f"k: must be between 1 and {self.settings.max_k}, "
                                f"got {k}")
        if room < 1:
            raise HTTPException(400, "the index has no other items to return")
        return min(k, room)

    def decode(self, upload: Upload) -> Prepared:
        """Choose k, decode (pixel cap first) and resize as the collection was (a worker
        thread, the index followed already)."""
        k = self.choose_k(upload.k, len(self.index))
        started = time.perf_counter()
        config = self.index.model.config
        image = decode_image(io.BytesIO(upload.data), max_pixels=self.settings.max_pixels,
                             name=upload.name)
        images = query_batch(image, config.input_size, config.in_channels)
        done = time.perf_counter()
        return Prepared(images, k, done - started, done)

    def prepare(self, upload: Upload) -> Prepared:
        """Follow the index (one small read when nothing changed), then ``decode``."""
        self.index.refresh()
        return self.decode(upload)

    def runtime_name(self, batch: int) -> str:
        embedder = self.index.embedder
        if isinstance(embedder, ChosenRuntime):
            return embedder.runtime_for(batch).name
        return embedder.name

    async def search(self, data: bytes, name: str, k: int | None) -> Answer:
        """The answer to one upload; ``k`` None asks for the default."""
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
        return Answer(prepared.k, hits, Timing(
            decode_ms=_ms(prepared.decode_s), wait_ms=_ms(started - prepared.ready),
            embed_ms=_ms(embedded - started), search_ms=_ms(time.perf_counter() - embedded),
            batch=1, runtime=self.runtime_name(1)))

    async def search(self, data: bytes, name: str, k: int | None) -> Answer:
        upload = Upload(data, name, k, time.perf_counter())
        prepared = await run_in_threadpool(self.prepare, upload)
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
    """Concurrent queries decoded, embedded in one forward pass (``MicroBatcher``) and
    searched per distinct k, all in the batcher's thread and its decoding pool: the event
    loop hands each upload over once and hears back once."""

    def __init__(self, index: Index, settings: ServiceSettings, metrics: ServiceMetrics) -> None:
        super().__init__(index, settings, metrics)
        self._batcher: MicroBatcher[Upload, Answer] | None = None
        self._decoders: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def batcher(self) -> MicroBatcher[Upload, Answer]:
        """Started on first use (and again after ``close``: a test client may start the
        app twice)."""
        with self._lock:
            if self._batcher is None:
                self._decoders = ThreadPoolExecutor(
                    max(1, torch.get_num_threads()), thread_name_prefix="lookalike-decode")
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

    def _decode_or_error(self, upload: Upload) -> Prepared | Exception:
        try:
            return self.decode(upload)
        except Exception as exc:  # a bad upload fails its own query only
            return exc

    def _run(self, uploads: list[Upload]) -> Sequence[Answer | BaseException]:
        """Follow the index once, decode the uploads side by side (Pillow lets go of the
        GIL while decoding), one forward pass for those that decoded, then one search per
        distinct k."""
        started = time.perf_counter()
        self.index.refresh()  # one small read per batch when nothing changed
        assert self._decoders is not None
        decoded = (list(self._decoders.map(self._decode_or_error, uploads)) if len(uploads) > 1
                   else [self._decode_or_error(uploads[0])])
        answers: list[Answer | BaseException] = [
            item if isinstance(item, Exception) else RuntimeError("not searched")
            for item in decoded]
        good = [position for position, item in enumerate(decoded)
                if isinstance(item, Prepared)]
        batch = [item for item in decoded if isinstance(item, Prepared)]
        if not batch:
            return answers
        embedding = time.perf_counter()
        vectors = self.index.embedder(torch.cat([p.images for p in batch]))  # (B, D)
        embedded = time.perf_counter()
        runtime = self.runtime_name(len(batch))
        by_k: dict[int, list[int]] = defaultdict(list)
        for row, prepared in enumerate(batch):
            by_k[prepared.k].append(row)
        for k, rows in by_k.items():
            searched = time.perf_counter()
            try:
                found = self.index.search_embeddings(vectors[rows], k)
            except Exception as exc:  # e.g. k above an index shrunk meanwhile: these only
                for row in rows:
                    answers[good[row]] = exc
                continue
            search_s = time.perf_counter() - searched
            for row, hits in zip(rows, found, strict=True):
                prepared, upload = batch[row], uploads[good[row]]
                answers[good[row]] = Answer(prepared.k, hits, Timing(
                    decode_ms=_ms(prepared.decode_s), wait_ms=_ms(started - upload.queued),
                    embed_ms=_ms(embedded - embedding), search_ms=_ms(search_s),
                    batch=len(batch), runtime=runtime))
        return answers

    async def search(self, data: bytes, name: str, k: int | None) -> Answer:
        return await self.batcher(Upload(data, name, k, time.perf_counter()))

    def close(self) -> None:
        with self._lock:
            batcher, self._batcher = self._batcher, None
            decoders, self._decoders = self._decoders, None
        if batcher is not None:
            batcher.close()
        if decoders is not None:
            decoders.shutdown(wait=False)


def create_searcher(index: Index, settings: ServiceSettings,
                    metrics: ServiceMetrics) -> Searcher:
    """The way ``settings.batching`` asks for."""
    kind = BatchingSearcher if settings.batching else SerialSearcher
    return kind(index, settings, metrics)

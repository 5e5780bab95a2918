"""Dynamic batching: concurrent requests grouped into one call, as model servers do it.

``MicroBatcher(run, max_batch, max_wait_s, max_queue)`` gathers the items submitted from
any thread or event loop and hands them to ``run`` in batches: a batch leaves when it
holds ``max_batch`` items, or when its oldest item has waited ``max_wait_s`` (Triton's
"max queue delay", TorchServe's "max batch delay"), so a lone request is never held
longer than that. While one batch runs, the next gathers: under load batches grow by
themselves, and when idle nothing waits. ``max_wait_s = 0`` batches only what is already
queued. At most ``max_queue`` items wait; one more raises ``QueueFull`` at once (the
service answers 503), so overload is refused instead of piling up without bound.

One worker thread runs the batches, one after another (on a CPU they would only share
its cores); ``run`` gets the items in arrival order and returns one result per item, or
an exception for the items that failed. An item whose caller gave up (an asyncio
cancellation, a closed connection) is dropped before its batch runs.

Why not the ``batched`` package: it has no bound on its queue, and its timeout runs
between batch attempts rather than from each item's arrival.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from lookalike.errors import ConfigError

logger = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class QueueFull(Exception):
    """The batcher's queue holds ``max_queue`` items already: try again later."""

    def __init__(self, waiting: int) -> None:
        super().__init__(f"server busy: {waiting} queries are waiting already; try again "
                         "shortly")
        self.waiting = waiting


@dataclass(frozen=True)
class BatchInfo:
    """One batch run: its size (the items it answered: those that failed, a bad upload,
    are left out), how long its oldest item waited, how long ``run`` took."""

    size: int
    waited_s: float
    run_s: float


@dataclass
class _Pending(Generic[T, R]):
    item: T
    future: Future[R]
    arrived: float


class MicroBatcher(Generic[T, R]):
    """Groups submitted items into batches for ``run`` (see the module docstring).

    Args:
        run: items -> one result (or exception) per item, in order.
        max_batch: most items per batch.
        max_wait_s: longest an item waits for others to join its batch (0: no waiting).
        max_queue: most items waiting; more raise ``QueueFull``.
        on_batch: called (in the worker thread) after each batch, e.g. for metrics.
    """

    def __init__(self, run: Callable[[list[T]], Sequence[R | BaseException]], *,
                 max_batch: int = 32, max_wait_s: float = 0.002, max_queue: int = 256,
                 on_batch: Callable[[BatchInfo], None] | None = None,
                 name: str = "lookalike-batcher") -> None:
        if max_batch < 1 or max_queue < 1 or not max_wait_s >= 0:
            raise ConfigError(f"max_batch and max_queue must be >= 1 and max_wait_s >= 0, got "
                              f"{max_batch}, {max_queue}, {max_wait_s}")
        self.run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._pending: deque[_Pending[T, R]] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._running = 0  # items in the batch being run
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    # -- submitting ----------------------------------------------------------------------

    def submit(self, item: T) -> Future[R]:
        """Queue ``item``; its future gets its result. Raises ``QueueFull`` when
        ``max_queue`` items are waiting, ``RuntimeError`` once closed."""
        future: Future[R] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if len(self._pending) >= self.max_queue:
                raise QueueFull(len(self._pending))
            self._pending.append(_Pending(item, future, time.monotonic()))
            if len(self._pending) in (1, self.max_batch):  # the worker may be waiting for it
                self._ready.notify()
        return future

    async def __call__(self, item: T) -> R:
        """``submit`` from a coroutine: awaits the result without blocking the loop."""
        return await asyncio.wrap_future(self.submit(item))

    @property
    def waiting(self) -> int:
        """Items queued and not yet in a batch."""
        return len(self._pending)

    @property
    def running(self) -> int:
        """Items in the batch being run now."""
        return self._running

    def close(self, timeout: float | None = 5.0) -> None:
        """Run what is queued, then stop the worker thread."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout)

    # -- the worker ----------------------------------------------------------------------

    def _next_batch(self) -> list[_Pending[T, R]] | None:
        """Wait for a batch to be due and take it (None once closed and drained)."""
        with self._ready:
            while not self._pending:
                if self._closed:
                    return None
                self._ready.wait()
            deadline = self._pending[0].arrived + self.max_wait_s
            while len(self._pending) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left)
            size = min(self.max_batch, len(self._pending))
            batch = [self._pending.popleft() for _ in range(size)]
            self._running = len(batch)
            return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            waited = time.monotonic() - batch[0].arrived
            live = [p for p in batch if p.future.set_running_or_notify_cancel()]
            started = time.perf_counter()
            try:
                results: Sequence[R | BaseException] = (
                    self.run([p.item for p in live]) if live else [])
                if len(results) != len(live):
                    raise RuntimeError(f"the batch function returned {len(results)} results "
                                       f"for {len(live)} items")
            except BaseException as exc:  # every caller hears of it; the worker goes on
                results = [exc] * len(live)
            for pending, result in zip(live, results, strict=True):
                if isinstance(result, BaseException):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)
            self._running = 0
            answered = sum(not isinstance(result, BaseException) for result in results)
            if self.on_batch is not None and answered:
                try:
                    self.on_batch(BatchInfo(answered, waited, time.perf_counter() - started))
                except Exception:  # a broken observer must not stop the serving
                    logger.exception("the batcher's on_batch callback failed")

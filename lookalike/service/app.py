"""``create_app(index, settings)``: the FastAPI app behind ``lookalike serve``.

Routes (OpenAPI docs at ``/docs``):

- ``POST /api/search``: multipart ``image`` (+ optional ``k``) -> the k most similar items
- ``GET /api/items?random=N``: N random items to start browsing from
- ``GET /api/items/{id}``: an item's metadata; ``/image``: its thumbnail; ``/similar``: the
  items most like it ("more like this")
- ``GET /api/health``: the index, the runtime, the queue, recent batch sizes and latency
  percentiles; ``GET /metrics``: counters and histograms in the Prometheus text format
- ``GET /``: the search page (plain HTML/CSS/JS, no build step)

Safety: item images are found through the index's own records only (an id, never a path,
comes in); uploads are capped in size before they are read and in pixels before they are
decoded; every error is JSON ``{"detail": "one line"}`` with a 4xx status, or 503 with a
``Retry-After`` header when more searches wait for the model than ``max_queue``. Uploads
are decoded off the event loop and embedded by a ``searcher``: concurrent ones together in
one forward pass (``settings.batching``), or one at a time; the other endpoints are plain
functions, run in the thread pool.

The app follows its index folder: each request, in its worker thread before anything
else, checks (one small SQLite read) whether another process committed a new generation
(``lookalike index add`` / ``remove``) and loads it, so counts, random items and search
results always describe the same items. The check rides the request's own thread hop
(``following``, and the searcher): an app-wide dependency would cost each request a
second hop, measured at about 7% of the server's throughput (README, serving).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import FastAPI, File, Form, HTTPException, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from lookalike import __version__
from lookalike.errors import BadImageError, ImageTooLargeError, LookalikeError
from lookalike.search import Hit, Index, ItemRecord
from lookalike.service.batcher import QueueFull
from lookalike.service.limits import BodySizeLimit, too_large_message
from lookalike.service.metrics import CONTENT_TYPE, MetricsMiddleware, ServiceMetrics
from lookalike.service.schemas import (
    Batching,
    Health,
    Item,
    ItemList,
    Latency,
    Problem,
    Queue,
    Result,
    SearchResponse,
)
from lookalike.service.searcher import create_searcher
from lookalike.service.settings import ServiceSettings
from lookalike.service.thumbnails import ThumbnailCache

P = ParamSpec("P")
R = TypeVar("R")
STATIC = FilePath(__file__).parent / "static"
ItemId = Annotated[int, Path(ge=0, le=2**63 - 1, description="the item's id")]
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem} for status in (400, 404, 413, 415, 422)}
BUSY: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "too many searches waiting: retry after the "
          "Retry-After header's seconds"}}


def _item(record: ItemRecord | Hit) -> Item:
    return Item(id=record.id, source=record.source, label=record.label,
                added_at=record.added_at, image_url=f"/api/items/{record.id}/image")


def _results(hits: list[Hit]) -> list[Result]:
    """Hits carry their items' metadata: no second look-up."""
    return [Result(**_item(hit).model_dump(), rank=hit.rank, distance=hit.distance)
            for hit in hits]


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def create_app(index: Index, settings: ServiceSettings | None = None,
               on_shutdown: Callable[[], None] | None = None) -> FastAPI:
    """The app serving ``index``; the index's model is loaded now, not on the first query.
    Queries are embedded by ``index.embedder`` (``Index.use_embedder`` picks the runtime);
    ``on_shutdown`` runs when the server stops (closing an index the app was given to own).
    """
    settings = settings or ServiceSettings()
    index.model  # noqa: B018 - load (and check) the model before the first request
    thumbnails = ThumbnailCache(index, settings.thumbnail_size, settings.thumbnail_cache,
                                settings.max_pixels)
    metrics = ServiceMetrics(settings.latency_window)
    searcher = create_searcher(index, settings, metrics)

    def following(endpoint: Callable[P, R]) -> Callable[P, R]:
        """``endpoint`` (a plain function: FastAPI runs it in the thread pool), after loading
        the generation another process committed since the last request, if any."""
        @functools.wraps(endpoint)  # FastAPI reads the parameters through __wrapped__
        def followed(*args: P.args, **kwargs: P.kwargs) -> R:
            index.refresh()
            return endpoint(*args, **kwargs)
        return followed

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            searcher.close()
            if on_shutdown is not None:
                on_shutdown()

    app = FastAPI(title="lookalike", version=__version__,
                  description=f"Visual similarity search over {len(index)} items.",
                  lifespan=lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: times every answer

    @app.exception_handler(QueueFull)
    async def busy(_: Request, exc: QueueFull) -> JSONResponse:
        metrics.reject()
        return JSONResponse({"detail": str(exc)}, status_code=503,
                            headers={"Retry-After": str(settings.retry_after_s)})

    @app.exception_handler(ImageTooLargeError)
    async def too_large(_: Request, exc: ImageTooLargeError) -> JSONResponse:
        return _problem(413, str(exc))

    @app.exception_handler(BadImageError)
    async def bad_image(_: Request, exc: BadImageError) -> JSONResponse:
        return _problem(415, str(exc))

    @app.exception_handler(LookalikeError)
    async def lookalike_error(_: Request, exc: LookalikeError) -> JSONResponse:
        return _problem(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _problem(422, f"{where}: {first.get('msg', 'invalid value')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _problem(exc.status_code, str(exc.detail))

    @app.get("/api/health", response_model=Health, tags=["service"])
    @following
    def health() -> Health:
        recent = metrics.recent()
        return Health(status="ok", items=len(index), kind=index.kind, distance=index.distance,
                      model=index.fingerprint, generation=index.generation,
                      runtime=index.embedder.describe(), pid=os.getpid(),
                      queue=Queue(waiting=searcher.waiting, running=searcher.running,
                                  limit=settings.max_queue, rejected=metrics.rejected),
                      batching=Batching(enabled=settings.batching, max_batch=settings.max_batch,
                                        wait_ms=settings.batch_wait_ms,
                                        **recent["batch_size"]),
                      latency_ms=Latency(**recent["latency_ms"]))

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    @following
    def prometheus_metrics() -> PlainTextResponse:
        """Counters and histograms in the Prometheus text format (this worker's)."""
        text = metrics.exposition({
            "lookalike_queue_length": ("Searches waiting for the model.", searcher.waiting),
            "lookalike_queue_running": ("Searches in the forward pass running now.",
                                        searcher.running),
            "lookalike_queue_limit": ("Most searches that may wait (more get 503).",
                                      settings.max_queue),
            "lookalike_index_items": ("Items in the index served.", len(index)),
            "lookalike_index_generation": ("Index generation served.", index.generation)})
        return PlainTextResponse(text, media_type=CONTENT_TYPE)

    @app.post("/api/search", response_model=SearchResponse, responses={**ERRORS, **BUSY},
              tags=["search"])
    async def search(image: Annotated[UploadFile,
                                      File(description="the query image (PNG, JPEG...)")],
                     k: Annotated[int | None, Form(description="how many results")] = None
                     ) -> SearchResponse:
        """The k items that look most like the uploaded image."""
        if image.content_type and not image.content_type.startswith("image/") \
                and image.content_type != "application/octet-stream":
            raise HTTPException(415, f"{image.filename}: not an image "
                                f"(content type {image.content_type})")
        data = await image.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(413, too_large_message(settings.max_upload_bytes))
        if not data:
            raise HTTPException(400, f"{image.filename or 'the upload'}: empty file")
        started = time.perf_counter()
        name = image.filename or "upload"
        answer = await searcher.search(data, name, k)  # decoded in a thread, then embedded
        return SearchResponse(query=name, k=answer.k, distance=index.distance,
                              results=_results(answer.hits),
                              seconds=time.perf_counter() - started, timing=answer.timing)

    @app.get("/api/items", response_model=ItemList, tags=["items"])
    @following
    def items(random: Annotated[int, Query(ge=1, description="how many random items")] = 12,
              seed: Annotated[int | None, Query(ge=0, description="repeatable choice")] = None
              ) -> ItemList:
        """Random items to start browsing from."""
        chosen = index.sample_ids(min(random, settings.max_random), seed=seed)
        records = index.records(chosen.tolist())
        return ItemList(items=[_item(records[i]) for i in chosen.tolist() if i in records])

    def record_or_404(item_id: int) -> ItemRecord:
        record = index.records([item_id]).get(item_id)
        if record is None:
            raise HTTPException(404, f"no such item: {item_id}")
        return record

    @app.get("/api/items/{item_id}", response_model=Item, responses=ERRORS, tags=["items"])
    @following
    def item(item_id: ItemId) -> Item:
        return _item(record_or_404(item_id))

    @app.get("/api/items/{item_id}/image", responses=ERRORS, tags=["items"],
             response_class=Response)
    @following
    def item_image(item_id: ItemId) -> Response:
        """The item's thumbnail, found through the index's record of it (never a path)."""
        record_or_404(item_id)
        try:
            data, media_type = thumbnails.get(item_id)
        except BadImageError as exc:  # the file changed or vanished since indexing
            raise HTTPException(404, f"item {item_id}: image unavailable ({exc})") from None
        return Response(data, media_type=media_type,
                        headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/api/items/{item_id}/similar", response_model=SearchResponse, responses=ERRORS,
             tags=["search"])
    @following
    def similar(item_id: ItemId,
                k: Annotated[int | None, Query(description="how many results")] = None
                ) -> SearchResponse:
        """More like this: the k items nearest to an item of the index (itself left out)."""
        record_or_404(item_id)
        k = searcher.choose_k(k, len(index) - 1)
        started = time.perf_counter()
        hits = index.more_like([item_id], k)[0]  # errors: the LookalikeError handler's 400
        return SearchResponse(query=f"item {item_id}", k=k, distance=index.distance,
                              results=_results(hits),
                              seconds=time.perf_counter() - started)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app

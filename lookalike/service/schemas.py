"""The JSON shapes of the API (they also make the OpenAPI docs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Item(BaseModel):
    id: int = Field(description="the item's id in the index")
    source: str = Field(description="where it came from: a file path or e.g. fashion-mnist/test#12")
    label: str | None = Field(description="class name, when known")
    added_at: str = Field(description="when it was added (ISO 8601, UTC)")
    image_url: str = Field(description="its thumbnail")


class Result(Item):
    rank: int = Field(description="1 = most similar")
    distance: float = Field(description="distance between the embeddings, in the index's "
                            "distance (SearchResponse.distance); smaller is more similar")


class Timing(BaseModel):
    decode_ms: float = Field(description="decoding and resizing the upload")
    wait_ms: float = Field(description="waiting for the model: for other requests' forward "
                           "passes, or for others to join this one's batch")
    embed_ms: float = Field(description="the forward pass that embedded this query")
    search_ms: float = Field(description="the vector search and the results' metadata")
    batch: int = Field(description="queries embedded in that forward pass (1: alone)")
    runtime: str = Field(description="what ran it: torch or onnx (ONNX Runtime)")


class SearchResponse(BaseModel):
    query: str = Field(description="the uploaded file's name, or 'item N'")
    k: int
    distance: str = Field(description="what the results' distances measure: the distance the "
                          "index's model was trained with (euclidean, squared_euclidean, "
                          "cosine...)")
    results: list[Result]
    seconds: float = Field(description="server time for this search: decoding the upload, "
                           "waiting for the model (other requests), embedding, searching")
    timing: Timing | None = Field(default=None, description="where that time went (uploads "
                                  "only)")


class ItemList(BaseModel):
    items: list[Item]


class Queue(BaseModel):
    waiting: int = Field(description="searches waiting for the model now")
    running: int = Field(description="searches in the forward pass running now")
    limit: int = Field(description="most searches that may wait; more are answered 503")
    rejected: int = Field(description="searches answered 503 since the start")


class Batching(BaseModel):
    enabled: bool = Field(description="whether concurrent uploads are embedded together")
    max_batch: int
    wait_ms: float = Field(description="longest a query waits for others to join its batch")
    window: int = Field(description="recent forward passes summarised")
    mean: float | None = Field(description="mean queries per recent forward pass")
    max: int | None = Field(description="most queries in a recent forward pass")


class Latency(BaseModel):
    window: int = Field(description="recent searches (uploads and more-like-this) summarised")
    p50: float | None
    p90: float | None
    p99: float | None


class Health(BaseModel):
    status: str
    items: int
    kind: str
    distance: str = Field(description="the distance searched by and reported")
    model: str = Field(description="fingerprint of the index's model")
    generation: int = Field(description="the index generation served (one more per change)")
    runtime: dict[str, Any] = Field(description="what embeds queries: torch, onnx, or both "
                                    "by batch size (with the start-up timings, ms)")
    pid: int = Field(description="the worker process that answered")
    queue: Queue
    batching: Batching
    latency_ms: Latency = Field(description="server time of recent searches, ms")


class Problem(BaseModel):
    detail: str = Field(description="one line saying what was wrong")

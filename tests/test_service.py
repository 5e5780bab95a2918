"""lookalike.service: the JSON API, its limits and its safety, through FastAPI's TestClient.

One tiny flat index (3 classes x 8 images, untrained 16-d SmallCNN) serves the module. A
collection image sent as a query finds itself at distance ~0 whatever the model, which is
the ground truth most tests lean on.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.types import Message, Receive, Scope, Send

from lookalike.cli import build_parser
from lookalike.search import Index
from lookalike.service import ServiceSettings, create_app
from lookalike.service import server as server_module
from lookalike.service.limits import MULTIPART_OVERHEAD, BodySizeLimit
from lookalike.service.server import DEFAULT_HOST, is_loopback
from lookalike.service.thumbnails import ThumbnailCache

from .service_fixtures import (
    BACKENDS,
    CLASSES,
    PER_CLASS,
    build_tiny_index,
    encode,
    item_path,
)

ITEMS = CLASSES * PER_CLASS
QUERY_ID = 5
SETTINGS = ServiceSettings(max_upload_bytes=50_000, max_pixels=1_000_000, default_k=5,
                           max_k=30, max_random=10, thumbnail_size=16)
SECRETS = (b"root:", b"[build-system]")


@pytest.fixture(scope="module", params=BACKENDS)
def index(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    """The tiny index, in a FAISS folder and in a (local-mode) Qdrant collection: every
    test of the service runs over both backends."""
    index = build_tiny_index(tmp_path_factory.mktemp("service"), backend=request.param)
    yield index
    index.close()


@pytest.fixture(scope="module")
def client(index: Index) -> Iterator[TestClient]:
    with TestClient(create_app(index, SETTINGS)) as client:
        yield client


@pytest.fixture(scope="module")
def lenient(index: Index) -> Iterator[TestClient]:
    """A client that answers 500 for server errors instead of raising them in the test."""
    with TestClient(create_app(index, SETTINGS), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def query_png(index: Index) -> bytes:
    """The bytes of collection item QUERY_ID's file, as a user would upload it."""
    return item_path(index, QUERY_ID).read_bytes()


@pytest.fixture(scope="module")
def query_image(index: Index) -> Image.Image:
    with Image.open(item_path(index, QUERY_ID)) as image:
        return image.convert("RGB")


def search(client: TestClient, data: bytes, name: str = "query.png",
           content_type: str = "image/png", **form: Any) -> httpx.Response:
    return client.post("/api/search", files={"image": (name, data, content_type)},
                       data={key: str(value) for key, value in form.items()})


def assert_problem(response: httpx.Response, status: int) -> str:
    """The response is a one-line JSON error with ``status``; returns its detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail"}
    detail = body["detail"]
    assert isinstance(detail, str) and detail.strip()
    assert "\n" not in detail and "\r" not in detail
    return detail


def assert_no_secrets(response: httpx.Response) -> None:
    for secret in SECRETS:
        assert secret not in response.content


# -- page, health, docs ------------------------------------------------------------------


def test_health_describes_the_index(client: TestClient, index: Index) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    answer = response.json()
    assert {key: answer[key] for key in ("status", "items", "kind", "distance", "model")} == {
        "status": "ok", "items": ITEMS, "kind": index.kind, "distance": "euclidean",
        "model": index.fingerprint}
    assert answer["generation"] == index.generation
    assert answer["runtime"] == {"runtime": "torch"}  # Index.open's default


def test_root_serves_the_search_page(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="file-input"' in response.text
    assert "/static/app.js" in response.text


@pytest.mark.parametrize(("path", "media", "marker"), [
    ("/static/app.js", "javascript", "/api/search"),
    ("/static/style.css", "text/css", "#status"),
])
def test_static_files_are_served(client: TestClient, path: str, media: str,
                                 marker: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert media in response.headers["content-type"]
    assert marker in response.text


def test_openapi_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "post" in paths["/api/search"]
    for path in ("/api/health", "/api/items", "/api/items/{item_id}",
                 "/api/items/{item_id}/image", "/api/items/{item_id}/similar"):
        assert path in paths
    assert "/" not in paths


# -- search by upload --------------------------------------------------------------------


def test_search_finds_the_uploaded_collection_image_first(client: TestClient,
                                                          query_png: bytes) -> None:
    response = search(client, query_png, name="shoe.png", k=7)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["query"] == "shoe.png"
    assert answer["k"] == 7
    assert answer["distance"] == "euclidean"
    assert answer["seconds"] >= 0
    results = answer["results"]
    assert [r["rank"] for r in results] == list(range(1, 8))
    assert results[0]["id"] == QUERY_ID
    assert results[0]["distance"] < 1e-3
    assert results[0]["label"] == "class_0"
    distances = [r["distance"] for r in results]
    assert distances == sorted(distances)
    assert len({r["id"] for r in results}) == 7
    for result in results:
        assert result["image_url"] == f"/api/items/{result['id']}/image"
        assert {"source", "added_at"} <= set(result)


def test_results_are_in_the_models_distance(query_png: bytes,
                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    """A model trained with squared Euclidean distances is served in that unit: the API
    answers what ``Index.search`` and a brute force over the model's embeddings say."""
    with build_tiny_index(tmp_path_factory.mktemp("squared"), "squared_euclidean") as index, \
            TestClient(create_app(index, SETTINGS)) as squared:
        assert squared.get("/api/health").json()["distance"] == "squared_euclidean"
        answer = search(squared, query_png, k=6).json()
        assert answer["distance"] == "squared_euclidean"
        expected = index.search([Image.open(io.BytesIO(query_png))], k=6)[0]
        assert [(r["id"], r["distance"]) for r in answer["results"]] == [
            (hit.id, pytest.approx(hit.distance)) for hit in expected]
        records = index.records(range(ITEMS))
        gallery = index.embed([records[i].path for i in range(ITEMS)]).astype(np.float64)
        query = index.embed(Image.open(io.BytesIO(query_png))).astype(np.float64)
        exact = ((gallery - query) ** 2).sum(axis=1)
        for result in answer["results"]:
            assert result["distance"] == pytest.approx(exact[result["id"]], rel=1e-5, abs=1e-5)
        assert answer["results"][-1]["distance"] > 1e-2  # distances of order 1, not rounding
        similar = squared.get(f"/api/items/{QUERY_ID}/similar", params={"k": 3}).json()
        assert similar["distance"] == "squared_euclidean"


def test_search_without_k_uses_the_default(client: TestClient, query_png: bytes) -> None:
    answer = search(client, query_png).json()
    assert answer["k"] == SETTINGS.default_k
    assert len(answer["results"]) == SETTINGS.default_k


def test_default_k_is_capped_by_the_index_size(index: Index, query_png: bytes) -> None:
    settings = ServiceSettings(default_k=ITEMS + 6, max_k=ITEMS + 10)
    with TestClient(create_app(index, settings)) as client:
        answer = search(client, query_png).json()
        assert answer["k"] == ITEMS
        assert sorted(r["id"] for r in answer["results"]) == list(range(ITEMS))
        assert len(search(client, query_png, k=ITEMS + 10).json()["results"]) == ITEMS


@pytest.mark.parametrize(("fmt", "mode", "finds_itself"), [
    ("JPEG", "RGB", False),   # lossy: an untrained model need not rank the item first
    ("PNG", "L", False),      # grayscale: converted to 3 channels, not the same pixels
    ("PNG", "RGBA", True),    # opaque alpha composited over white: the same pixels
    ("BMP", "RGB", True),
])
def test_other_formats_and_modes_are_accepted(client: TestClient, query_image: Image.Image,
                                              fmt: str, mode: str, finds_itself: bool) -> None:
    data = encode(query_image.convert(mode), fmt)
    response = search(client, data, name=f"query.{fmt.lower()}",
                      content_type=f"image/{fmt.lower()}", k=4)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4]
    if finds_itself:
        assert results[0]["id"] == QUERY_ID and results[0]["distance"] < 1e-3


def test_octet_stream_uploads_are_decoded_by_content(client: TestClient,
                                                     query_png: bytes) -> None:
    response = search(client, query_png, name="blob", content_type="application/octet-stream")
    assert response.status_code == 200
    assert response.json()["results"][0]["id"] == QUERY_ID


def test_non_image_bytes_are_415(client: TestClient) -> None:
    detail = assert_problem(search(client, b"hello, not a picture", name="notes.png"), 415)
    assert "notes.png" in detail


def test_text_content_type_is_415(client: TestClient, query_png: bytes) -> None:
    detail = assert_problem(search(client, query_png, name="a.txt", content_type="text/plain"),
                            415)
    assert "text/plain" in detail


def test_truncated_png_is_415(client: TestClient, query_png: bytes) -> None:
    detail = assert_problem(search(client, query_png[: len(query_png) // 2], name="cut.png"),
                            415)
    assert "cut.png" in detail


def test_empty_file_is_400(client: TestClient) -> None:
    detail = assert_problem(search(client, b"", name="empty.png"), 400)
    assert "empty" in detail


def test_missing_image_field_is_422(client: TestClient) -> None:
    detail = assert_problem(client.post("/api/search", data={"k": "3"}), 422)
    assert "image" in detail


@pytest.mark.parametrize("k", ["0", "-2", str(SETTINGS.max_k + 1), "many"])
def test_bad_k_is_422(client: TestClient, query_png: bytes, k: str) -> None:
    detail = assert_problem(search(client, query_png, k=k), 422)
    assert detail.startswith("k")


def test_upload_above_the_limit_is_413(client: TestClient) -> None:
    response = search(client, bytes(200_000), name="huge.png")
    detail = assert_problem(response, 413)
    assert "too large" in detail


def test_upload_just_above_the_limit_is_413(client: TestClient) -> None:
    """Within the middleware's multipart allowance but above max_upload_bytes: the
    endpoint's own check answers."""
    size = SETTINGS.max_upload_bytes + MULTIPART_OVERHEAD // 2
    assert "too large" in assert_problem(search(client, bytes(size)), 413)


def multipart(name: str, data: bytes, boundary: str = "lookalike-test-boundary") -> tuple[
        bytes, dict[str, str]]:
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="{name}"\r\nContent-Type: image/png\r\n\r\n').encode()
    return (head + data + f"\r\n--{boundary}--\r\n".encode(),
            {"content-type": f"multipart/form-data; boundary={boundary}"})


def chunked(body: bytes, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


def test_streamed_upload_above_the_limit_is_413(client: TestClient) -> None:
    """No Content-Length (chunked upload): the middleware must count and answer 413."""
    body, headers = multipart("streamed.png", bytes(200_000))
    response = client.post("/api/search", content=chunked(body), headers=headers)
    assert "content-length" not in response.request.headers
    assert "too large" in assert_problem(response, 413)


def test_streamed_upload_within_the_limit_is_searched(client: TestClient,
                                                      query_png: bytes) -> None:
    body, headers = multipart("streamed.png", query_png)
    response = client.post("/api/search", content=chunked(body, 256), headers=headers)
    assert "content-length" not in response.request.headers
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["id"] == QUERY_ID


def test_image_above_max_pixels_is_413(client: TestClient) -> None:
    data = encode(Image.new("RGB", (3000, 3000), (40, 40, 40)))
    assert len(data) < SETTINGS.max_upload_bytes  # the pixel cap answers, not the size cap
    detail = assert_problem(search(client, data, name="bomb.png"), 413)
    assert "bomb.png" in detail and "pixels" in detail


# -- the size-limit middleware alone -------------------------------------------------------


async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """A bare ASGI app that reads the whole body and answers its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def limited() -> TestClient:
    return TestClient(BodySizeLimit(echo_length, max_bytes=1000))


def test_middleware_passes_bodies_within_the_cap(limited: TestClient) -> None:
    cap = 1000 + MULTIPART_OVERHEAD
    assert limited.post("/", content=bytes(cap)).text == str(cap)
    response = limited.post("/", content=chunked(bytes(cap), 1000))
    assert "content-length" not in response.request.headers
    assert response.text == str(cap)


def test_middleware_refuses_a_large_declared_length(limited: TestClient) -> None:
    response = limited.post("/", content=bytes(1000 + MULTIPART_OVERHEAD + 1))
    assert "too large" in assert_problem(response, 413)


def test_middleware_refuses_a_large_streamed_body(limited: TestClient) -> None:
    response = limited.post("/", content=chunked(bytes(40_000), 1000))
    assert "content-length" not in response.request.headers
    assert "too large" in assert_problem(response, 413)


def test_middleware_counts_bytes_when_the_declared_length_lies() -> None:
    messages: list[Message] = []
    chunks: list[Message] = [{"type": "http.request", "body": bytes(10_000),
                              "more_body": True}] * 3
    chunks.append({"type": "http.request", "body": b"", "more_body": False})

    async def receive() -> Message:
        return chunks.pop(0)

    async def send(message: Message) -> None:
        messages.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [
        (b"content-length", b"10")]}
    asyncio.run(BodySizeLimit(echo_length, max_bytes=1000)(scope, receive, send))
    assert messages[0]["status"] == 413
    assert b"too large" in messages[1]["body"]


# -- browsing items ----------------------------------------------------------------------


def test_random_items_are_distinct_and_repeatable(client: TestClient) -> None:
    first = client.get("/api/items", params={"random": 6, "seed": 3}).json()["items"]
    again = client.get("/api/items", params={"random": 6, "seed": 3}).json()["items"]
    other = client.get("/api/items", params={"random": 6, "seed": 4}).json()["items"]
    ids = [item["id"] for item in first]
    assert len(ids) == len(set(ids)) == 6
    assert set(ids) <= set(range(ITEMS))
    assert [item["id"] for item in again] == ids
    assert [item["id"] for item in other] != ids
    assert all(item["image_url"] == f"/api/items/{item['id']}/image" for item in first)


def test_random_items_are_capped(client: TestClient) -> None:
    items = client.get("/api/items", params={"random": 1000}).json()["items"]
    assert len(items) == SETTINGS.max_random
    assert len(client.get("/api/items").json()["items"]) == SETTINGS.max_random


def test_zero_random_items_is_422(client: TestClient) -> None:
    assert "random" in assert_problem(client.get("/api/items", params={"random": 0}), 422)


def test_negative_seed_is_422(lenient: TestClient) -> None:
    """numpy refuses negative seeds; the API must say so, not fail with a 500."""
    assert_problem(lenient.get("/api/items", params={"random": 3, "seed": -1}), 422)


def test_item_metadata(client: TestClient, index: Index) -> None:
    answer = client.get(f"/api/items/{QUERY_ID}").json()
    record = index.records([QUERY_ID])[QUERY_ID]
    assert answer == {"id": QUERY_ID, "source": record.source, "label": "class_0",
                      "added_at": record.added_at,
                      "image_url": f"/api/items/{QUERY_ID}/image"}
    assert "path" not in answer


@pytest.mark.parametrize("suffix", ["", "/image", "/similar"])
def test_unknown_item_is_404(client: TestClient, suffix: str) -> None:
    detail = assert_problem(client.get(f"/api/items/{ITEMS + 100}{suffix}"), 404)
    assert str(ITEMS + 100) in detail
    negative = client.get(f"/api/items/-1{suffix}")
    assert negative.status_code in (404, 422)  # unknown, or refused by validation
    assert_problem(negative, negative.status_code)


@pytest.mark.parametrize("suffix", ["", "/image", "/similar"])
def test_non_integer_item_id_is_422(client: TestClient, suffix: str) -> None:
    assert "item_id" in assert_problem(client.get(f"/api/items/abc{suffix}"), 422)
    assert_problem(client.get(f"/api/items/1.5{suffix}"), 422)


@pytest.mark.parametrize("suffix", ["", "/image", "/similar"])
def test_item_id_beyond_sqlite_integers_is_a_clean_error(lenient: TestClient,
                                                        suffix: str) -> None:
    """2**70 passes int parsing but overflows SQLite's 64-bit INTEGER: 404 or 422, never 500."""
    response = lenient.get(f"/api/items/{2**70}{suffix}")
    assert response.status_code in (404, 422), response.text
    assert_problem(response, response.status_code)


def test_item_image_is_a_small_png(client: TestClient) -> None:
    response = client.get(f"/api/items/{QUERY_ID}/image")
    assert response.status_code == 200
    assert response.headers["content-type"] in ("image/png", "image/jpeg")
    with Image.open(io.BytesIO(response.content)) as image:
        image.load()
        assert max(image.size) <= SETTINGS.thumbnail_size
        assert image.format == response.headers["content-type"].split("/")[1].upper()


def test_item_image_of_a_photo_is_a_shrunk_jpeg(index: Index,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 300, 3), np.uint8))
    monkeypatch.setattr(index, "image", lambda item_id, max_pixels=None: photo)
    settings = ServiceSettings(thumbnail_size=120)  # above 64 px, photos become JPEG
    with TestClient(create_app(index, settings)) as client:
        response = client.get(f"/api/items/{QUERY_ID}/image")
    assert response.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == "JPEG"
        assert image.size == (120, 80)


@pytest.fixture
def image_reads(index: Index, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids whose image the index is asked for, in order (to see what a cache saves)."""
    reads: list[int] = []
    original = index.image

    def counting_image(item_id: int, max_pixels: int | None = None) -> Image.Image:
        reads.append(item_id)
        return original(item_id, max_pixels=max_pixels)

    monkeypatch.setattr(index, "image", counting_image)
    return reads


def test_item_image_is_cached(index: Index, image_reads: list[int]) -> None:
    with TestClient(create_app(index, SETTINGS)) as client:
        first = client.get(f"/api/items/{QUERY_ID}/image")
        second = client.get(f"/api/items/{QUERY_ID}/image")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert image_reads == [QUERY_ID]


def test_thumbnail_cache_drops_the_least_recently_used(
        index: Index, image_reads: list[int]) -> None:
    cache = ThumbnailCache(index, size=16, capacity=2, max_pixels=SETTINGS.max_pixels)
    for item_id in (0, 1, 0, 2, 0, 1):  # 2 pushes out 1 (0 was used more recently)
        cache.get(item_id)
    assert image_reads == [0, 1, 2, 1]


def test_item_image_that_vanished_is_404(index: Index,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Files moved or deleted since indexing: a 404 naming the item, not a 500."""
    missing = item_path(index, 0).with_name("gone.png")
    record = index.records([QUERY_ID])[QUERY_ID]
    monkeypatch.setattr(index, "records", lambda ids: {
        i: type(record)(i, str(missing), str(missing), record.label, record.added_at)
        for i in ids})
    with TestClient(create_app(index, SETTINGS), raise_server_exceptions=False) as fresh:
        detail = assert_problem(fresh.get(f"/api/items/{QUERY_ID}/image"), 404)
    assert f"item {QUERY_ID}" in detail


# -- path traversal ----------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "/api/items/..%2F..%2Fetc%2Fpasswd/image",
    "/api/items/%2e%2e/image",
    "/static/../../pyproject.toml",
    "/static/..%2F..%2F..%2Fpyproject.toml",
    "/static/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
    "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml",
    "/static//etc/passwd",
])
def test_path_traversal_urls_return_no_files(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code in (404, 422), response.text
    assert_problem(response, response.status_code)
    assert_no_secrets(response)


async def raw_get(app: Any, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side ``..`` clean-up)."""
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", b"test")],
             "client": ("127.0.0.1", 1), "server": ("test", 80)}
    await app(scope, receive, send)
    return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:])


@pytest.mark.parametrize("path", [
    "/static/../../pyproject.toml",
    "/static/../../../pyproject.toml",
    "/static/../app.py",
    "/static/../../../../../../etc/passwd",
    "/api/items/../../../../etc/passwd/image",
])
def test_raw_dot_segments_return_no_files(client: TestClient, path: str) -> None:
    status, body = asyncio.run(raw_get(client.app, path))
    assert status in (404, 422)
    assert not any(secret in body for secret in SECRETS)
    assert b"create_app" not in body


def test_path_query_parameter_is_ignored(client: TestClient) -> None:
    plain = client.get("/api/items/1/image")
    response = client.get("/api/items/1/image", params={"path": "/etc/passwd"})
    assert response.status_code == 200
    assert response.content == plain.content  # the item's own thumbnail, nothing else
    assert_no_secrets(response)


# -- more like this ----------------------------------------------------------------------


def test_similar_leaves_the_item_out(client: TestClient) -> None:
    answer = client.get(f"/api/items/{QUERY_ID}/similar", params={"k": 6}).json()
    assert answer["query"] == f"item {QUERY_ID}"
    ids = [r["id"] for r in answer["results"]]
    assert len(ids) == len(set(ids)) == 6
    assert QUERY_ID not in ids
    assert [r["rank"] for r in answer["results"]] == list(range(1, 7))


def test_similar_matches_a_search_by_the_item_image(client: TestClient,
                                                    query_png: bytes) -> None:
    by_upload = [r["id"] for r in search(client, query_png, k=6).json()["results"]]
    similar = [r["id"] for r in client.get(f"/api/items/{QUERY_ID}/similar",
                                            params={"k": 5}).json()["results"]]
    assert by_upload[0] == QUERY_ID
    assert similar == by_upload[1:]


def test_similar_default_k_and_index_cap(client: TestClient) -> None:
    assert len(client.get(f"/api/items/{QUERY_ID}/similar").json()["results"]) == \
        SETTINGS.default_k
    answer = client.get(f"/api/items/{QUERY_ID}/similar",
                        params={"k": SETTINGS.max_k}).json()
    assert len(answer["results"]) == ITEMS - 1
    assert_problem(client.get(f"/api/items/{QUERY_ID}/similar", params={"k": 0}), 422)


# -- concurrency -------------------------------------------------------------------------


def test_concurrent_searches_match_a_serial_run(client: TestClient, index: Index) -> None:
    """Concurrent uploads are embedded in batches: each still gets what it got alone."""
    uploads = [item_path(index, i).read_bytes() for i in range(ITEMS)]

    def ask(i: int) -> list[tuple[int, float]]:
        response = search(client, uploads[i % ITEMS], name=f"q{i}.png", k=4)
        assert response.status_code == 200, response.text
        return [(r["id"], r["distance"]) for r in response.json()["results"]]

    jobs = {(thread, n): (thread * 5 + n) % ITEMS for thread in range(16) for n in range(5)}
    expected = {i: ask(i) for i in set(jobs.values())}
    found: dict[tuple[int, int], list[tuple[int, float]]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def worker(thread: int) -> None:
        try:
            start.wait()
            for n in range(5):
                found[thread, n] = ask(jobs[thread, n])
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors[0]
    assert len(found) == 80
    for job, item in jobs.items():  # batched: the same items, distances up to rounding
        assert [i for i, _ in found[job]] == [i for i, _ in expected[item]]
        np.testing.assert_allclose([d for _, d in found[job]], [d for _, d in expected[item]],
                                   atol=1e-5)
        assert found[job][0][0] == item


# -- serving -----------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.2", False), ("example.com", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_binds_loopback_by_default() -> None:
    args = build_parser().parse_args(["serve", "--index", "X"])
    assert args.host == DEFAULT_HOST == "127.0.0.1"
    assert args.index == "X"
    assert args.max_upload_mb * 1024 * 1024 == ServiceSettings().max_upload_bytes


@pytest.mark.parametrize(("host", "warns"), [("127.0.0.1", False), ("0.0.0.0", True)])
def test_serve_warns_when_other_machines_can_connect(
        index: Index, monkeypatch: pytest.MonkeyPatch, host: str, warns: bool) -> None:
    import uvicorn

    ran: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.append(options))
    lines: list[str] = []
    server_module.serve(Path(index.path), host=host, port=8123, runtime="torch",
                        log=lines.append)
    assert ran == [{"host": host, "port": 8123, "log_level": "warning"}]
    assert any("warning" in line for line in lines) is warns
    assert any(f"{ITEMS} items" in line for line in lines)

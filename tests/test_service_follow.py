"""A running service follows its index folder: items added or removed by another handle or
another process (``lookalike index add`` / ``remove``) show in the very next answer, and
counts, random items and search results never disagree.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lookalike.search import Index
from lookalike.search import store as store_module
from lookalike.service import ServiceSettings, create_app

from .conftest import images_of, write_class_folder
from .service_fixtures import CLASSES, PER_CLASS, build_tiny_index, item_path

ITEMS = CLASSES * PER_CLASS
SETTINGS = ServiceSettings(default_k=3, max_k=50, max_random=100)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    index = build_tiny_index(tmp_path)
    yield index
    index.close()


@pytest.fixture
def client(index: Index) -> Iterator[TestClient]:
    with TestClient(create_app(index, SETTINGS)) as client:
        yield client


def health_items(client: TestClient) -> int:
    response = client.get("/api/health")
    assert response.status_code == 200, response.text
    return int(response.json()["items"])


def search_ids(client: TestClient, image: bytes, k: int = 3) -> list[int]:
    response = client.post("/api/search", files={"image": ("q.png", image, "image/png")},
                           data={"k": str(k)})
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["results"]]


def test_removals_by_another_handle_show_in_the_next_answer(client: TestClient,
                                                            index: Index) -> None:
    query = item_path(index, 5).read_bytes()
    assert health_items(client) == ITEMS
    assert search_ids(client, query)[0] == 5
    with Index.open(index.path) as other:
        other.remove([5, 6])
    assert health_items(client) == ITEMS - 2  # was: still ITEMS
    found = search_ids(client, query)
    assert len(found) == 3 and not {5, 6} & set(found)  # was: 2 results
    assert len(search_ids(client, query, k=ITEMS - 2)) == ITEMS - 2
    similar = client.get("/api/items/0/similar", params={"k": 3}).json()["results"]
    assert len(similar) == 3 and not {5, 6} & {r["id"] for r in similar}
    listed = client.get("/api/items", params={"random": 100}).json()["items"]
    assert len(listed) == ITEMS - 2 and not {5, 6} & {item["id"] for item in listed}
    assert client.get("/api/items/5").status_code == 404
    assert client.get("/api/items/5/image").status_code == 404


def test_additions_by_another_handle_are_found(client: TestClient, index: Index,
                                               tmp_path: Path) -> None:
    new = write_class_folder(tmp_path / "new", classes=1, per_class=3, seed=9)
    assert health_items(client) == ITEMS
    with Index.open(index.path) as other:
        added = other.add(images_of(new), progress=False).tolist()
    assert health_items(client) == ITEMS + 3
    first = Path(images_of(new)[0]).read_bytes()
    assert search_ids(client, first, k=1) == [added[0]]
    item = client.get(f"/api/items/{added[0]}")
    assert item.status_code == 200 and item.json()["source"].endswith("img_000.png")
    assert client.get(f"/api/items/{added[1]}/similar", params={"k": 2}).status_code == 200


def test_a_removal_by_the_command_line_in_another_process(client: TestClient,
                                                          index: Index) -> None:
    """Issue 13's case: `lookalike index remove 5 6` while the server runs."""
    removed = subprocess.run([sys.executable, "-m", "lookalike", "index", "remove", "--index",
                              str(index.path), "5", "6"], capture_output=True, text=True,
                             timeout=120)
    assert removed.returncode == 0, removed.stderr
    assert health_items(client) == ITEMS - 2
    query = item_path(index, 7).read_bytes()
    found = search_ids(client, query, k=3)
    assert len(found) == 3 and found[0] == 7 and not {5, 6} & set(found)


def test_an_unchanged_folder_is_not_reloaded(client: TestClient, index: Index,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The check per request is one small read; the vectors load only after a change."""
    loads: list[int] = []
    read_vectors = store_module.IndexStore.read_vectors

    def counted(store: store_module.IndexStore) -> object:
        if store is index.store:  # the served handle, not the other one opening
            loads.append(1)
        return read_vectors(store)

    monkeypatch.setattr(store_module.IndexStore, "read_vectors", counted)
    query = item_path(index, 1).read_bytes()
    for _ in range(5):
        health_items(client)
        search_ids(client, query)
    assert loads == []
    with Index.open(index.path) as other:
        other.remove([2])
    for _ in range(3):
        assert health_items(client) == ITEMS - 1
    assert len(loads) == 1


def test_searches_during_changes_always_get_k_results(client: TestClient, index: Index,
                                                      tmp_path: Path) -> None:
    """Another handle adds and removes items while the service answers: every search has
    its k results (none dropped for a row removed meanwhile), and the end state agrees."""
    new = images_of(write_class_folder(tmp_path / "new", classes=1, per_class=4, seed=5))
    queries = [item_path(index, i).read_bytes() for i in (0, 9, 17)]
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with Index.open(index.path) as other:
                for round_ in range(6):
                    ids = other.add(new, progress=False).tolist()
                    other.remove(ids[: 2 + round_ % 2])
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    answers = 0
    while not done.is_set() or answers < 10:
        assert health_items(client) >= ITEMS
        found = search_ids(client, queries[answers % 3], k=3)
        assert len(found) == 3 and len(set(found)) == 3
        answers += 1
    thread.join(timeout=60)
    assert not errors, errors[0]
    with Index.open(index.path) as final:
        assert health_items(client) == len(final) == ITEMS + 6 * 4 - 15
        assert search_ids(client, queries[1], k=len(final))[0] == 9

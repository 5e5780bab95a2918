"""The search page end to end: a real uvicorn server and headless Chromium via Playwright.

Skipped when Debian's chromium is not installed (``make data`` installs it), unless
LOOKALIKE_REQUIRE_BROWSER=1 says the browser must be there (CI), in which case it fails.
Playwright drives the system chromium; it never downloads a browser of its own.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from PIL import Image

from lookalike.search import Index
from lookalike.service import ServiceSettings, create_app

from .service_fixtures import CLASSES, PER_CLASS, build_tiny_index, item_path

pytestmark = pytest.mark.browser

QUERY_ID = 5
QUERY_NAME = "query-item-5.png"
TIMEOUT_MS = 5_000


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = "no chromium on PATH (Debian package chromium; scripts/ensure-chromium.sh)"
        if os.environ.get("LOOKALIKE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LOOKALIKE_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def index(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    index = build_tiny_index(tmp_path_factory.mktemp("browser"))
    yield index
    index.close()


@pytest.fixture(scope="module")
def base_url(index: Index) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, in a daemon thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(index, ServiceSettings())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_search_page_end_to_end(chromium: str, base_url: str, index: Index,
                                tmp_path: Path) -> None:
    from playwright.sync_api import FilePayload, expect, sync_playwright

    query = tmp_path / QUERY_NAME
    shutil.copyfile(item_path(index, QUERY_ID), query)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu",
                                          "--disable-dev-shm-usage"])
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(base_url + "/")

            # The index summary, then random items to start from.
            expect(page.locator("#summary")).to_contain_text(f"{CLASSES * PER_CLASS} items")
            cards = page.locator("#results .card")
            expect(cards).to_have_count(12)
            expect(page.locator("#results-title")).to_contain_text("Random items")
            page.wait_for_function(  # every thumbnail was served and decoded
                "() => [...document.querySelectorAll('#results .card img')]"
                ".every(img => img.complete && img.naturalWidth > 0)")

            # Upload a collection image: it comes back first, at distance ~0.
            page.set_input_files("#file-input", str(query))
            title = page.locator("#results-title")
            expect(title).to_contain_text(f"most similar to {QUERY_NAME}")
            expect(cards).to_have_count(12)
            assert cards.first.get_attribute("data-id") == str(QUERY_ID)
            expect(cards.first.locator(".distance")).to_contain_text("d = 0.000")
            for text in cards.locator(".distance").all_inner_texts():
                assert "d = " in text
            expect(page.locator("#status")).not_to_have_class("error")
            # the server's own time for it, and where it went
            expect(page.locator("#status")).to_contain_text("searched in")
            expect(page.locator("#status")).to_contain_text("embed")
            expect(page.locator("#status")).to_contain_text("(torch")

            # "More like this": click the second card.
            second = cards.nth(1).get_attribute("data-id")
            assert second is not None and second != str(QUERY_ID)
            cards.nth(1).click()
            expect(title).to_contain_text(f"most similar to item #{second}")
            expect(cards).to_have_count(12)
            assert second not in [cards.nth(i).get_attribute("data-id") for i in range(12)]

            # A file that is no image: the server's reason, shown as an error.
            notes: FilePayload = {"name": "notes.txt", "mimeType": "text/plain",
                                  "buffer": b"not a picture at all"}
            page.set_input_files("#file-input", files=[notes])
            status = page.locator("#status")
            expect(status).to_have_class("error")
            expect(status).to_contain_text("notes.txt: not an image")
            expect(cards).to_have_count(0)
            expect(title).to_be_hidden()

            screenshot = tmp_path / "page.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(screenshot) as image:
        image.verify()
        assert image.width > 0 and image.height > 0

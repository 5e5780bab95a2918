"""Request-size limiting: refuse a too-large upload before it is read into memory or disk.

Starlette's multipart parser spools a whole upload before the endpoint sees it, so the size
cap has to sit in front of it: this ASGI middleware answers 413 at once when the declared
``Content-Length`` is too large, and stops counting bytes (413) when a body without one
grows past the cap.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.service.settings import MB

MULTIPART_OVERHEAD = 16 * 1024
"""Room for the multipart boundaries and form fields around the image itself."""


def too_large_message(max_bytes: int) -> str:
    """The one 413 message, from the middleware and from the endpoint's own check."""
    return f"upload too large: the limit is {max_bytes / MB:g} MB"


class TooLarge(HTTPException):
    """Raised inside ``receive`` when a streamed body passes the cap. An HTTPException, so
    that FastAPI's form parser passes it on (it turns other exceptions into a 400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(413, reason)


class BodySizeLimit:
    """ASGI middleware: 413 JSON for request bodies above ``max_bytes`` (+ form overhead)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.cap = max_bytes + MULTIPART_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.cap:
            await _reject(send, too_large_message(self.max_bytes))
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.cap:
                    raise TooLarge(too_large_message(self.max_bytes))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except TooLarge:
            if not started:
                await _reject(send, too_large_message(self.max_bytes))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reject(send: Send, reason: str) -> None:
    body = json.dumps({"detail": reason}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"),
                          (b"content-length", str(len(body)).encode()),
                          (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})

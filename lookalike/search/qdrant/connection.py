"""Reaching Qdrant: where a collection lives, one shared client per place, one-line errors,
and how the model's distance maps onto Qdrant's.

A location is a URL (``http://host:6333``: a server or a cluster's entry point; an API key
comes from ``QDRANT_API_KEY``, never from the folder) or a folder path (the client's local
mode: the same API computed in-process by numpy, exact, for tests and small collections).
A local folder can be opened by one process at a time (the client locks it), so within a
process every index on the same location shares one client.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from lookalike.distances import get_distance
from lookalike.errors import ConfigError, SearchIndexError

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

API_KEY_ENV = "QDRANT_API_KEY"
TIMEOUT_S = 30
"""Seconds a request to a Qdrant server may take before it is reported unreachable."""
POINT_IDS = range(2**63)
"""The item ids a collection can hold (Qdrant's unsigned ids, as SQLite's signed ones)."""


class QdrantDistance(NamedTuple):
    """How Qdrant measures a model's distance, and how its scores become that distance."""

    qdrant: str  # a ``qdrant_client.models.Distance`` value: "Euclid", "Cosine"
    from_score: Callable[[np.ndarray], np.ndarray]


def _unchanged(scores: np.ndarray) -> np.ndarray:
    return scores


def _squared(scores: np.ndarray) -> np.ndarray:
    squared: np.ndarray = np.square(scores)
    return squared


def _one_minus(scores: np.ndarray) -> np.ndarray:
    return 1.0 - scores


QDRANT_DISTANCES = {
    "euclidean": QdrantDistance("Euclid", _unchanged),  # Qdrant's Euclid score is |x - y|
    "squared_euclidean": QdrantDistance("Euclid", _squared),  # same ranking, squared
    "cosine": QdrantDistance("Cosine", _one_minus),  # Qdrant's Cosine score is cos(x, y)
}
"""One line per model distance Qdrant can search by (``lookalike.distances``)."""


def qdrant_distance(name: str) -> QdrantDistance:
    """The Qdrant counterpart of the model distance ``name``, or a one-line error."""
    get_distance(name)  # an unregistered name gets the registry's error
    if name not in QDRANT_DISTANCES:
        raise ConfigError(f"distance {name!r} has no Qdrant counterpart (Qdrant searches "
                          f"{', '.join(QDRANT_DISTANCES)}): use the FAISS backend")
    return QDRANT_DISTANCES[name]


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def resolve_location(location: str | os.PathLike[str]) -> str:
    """A URL as given (without a trailing slash), a local-mode folder as an absolute path."""
    text = os.fspath(location)
    if not text.strip():
        raise ConfigError("--qdrant needs a URL (http://host:6333) or a local folder path")
    if text == ":memory:":
        raise ConfigError("--qdrant :memory: would vanish with this process; give a URL or "
                          "a folder for the local mode")
    if is_url(text):
        return text.rstrip("/")
    return str(Path(text).expanduser().resolve())


@contextlib.contextmanager
def qdrant_errors(location: str, doing: str) -> Iterator[None]:
    """Report any failure of the client while ``doing`` as one ``SearchIndexError`` line
    naming the location: an unreachable server, a refused request, a locked local folder."""
    try:
        yield
    except SearchIndexError:
        raise
    except Exception as exc:  # the client raises many types: HTTP, transport, ValueError
        raise SearchIndexError(f"Qdrant at {location}: cannot {doing}: "
                               f"{_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if "already accessed by another instance" in text:
        return ("the local folder is open in another process (the local mode allows one; "
                "stop it, or run a Qdrant server to share a collection)")
    if "Connection refused" in text or "ConnectError" in type(exc).__name__ + text:
        return "connection refused (is the server running, and is the URL right?)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class _Shared(NamedTuple):
    client: QdrantClient
    users: int


_CLIENTS: dict[str, _Shared] = {}
_CLIENTS_LOCK = threading.Lock()


def connect(location: str) -> QdrantClient:
    """The client for ``location`` (resolved), shared with every other open index on it in
    this process; checked to answer. Give it back with :func:`disconnect`."""
    with _CLIENTS_LOCK:
        shared = _CLIENTS.get(location)
        if shared is not None:
            _CLIENTS[location] = _Shared(shared.client, shared.users + 1)
            return shared.client
        client = _new_client(location)
        try:
            with qdrant_errors(location, "connect"):
                client.get_collections()
        except BaseException:
            client.close()
            raise
        _CLIENTS[location] = _Shared(client, 1)
        return client


def disconnect(location: str) -> None:
    """Give back a client :func:`connect` lent; the last user's return closes it."""
    with _CLIENTS_LOCK:
        shared = _CLIENTS.pop(location, None)
        if shared is None:
            return
        if shared.users > 1:
            _CLIENTS[location] = _Shared(shared.client, shared.users - 1)
        else:
            shared.client.close()


def _new_client(location: str) -> QdrantClient:
    try:
        from qdrant_client import QdrantClient
    except ImportError:
        raise ConfigError("the Qdrant backend needs qdrant-client: pip install "
                          "'lookalike[qdrant]'") from None
    with qdrant_errors(location, "connect"):
        if is_url(location):
            return QdrantClient(url=location, api_key=os.environ.get(API_KEY_ENV) or None,
                                timeout=TIMEOUT_S)
        Path(location).mkdir(parents=True, exist_ok=True)
        # the server's thread pool calls it from several threads
        return QdrantClient(path=location, force_disable_check_same_thread=True)

"""The Qdrant backend: an index folder whose vectors and item metadata live in a Qdrant
collection (a server, a cluster, or the client's local mode), searched through the same
``Index`` API as a FAISS folder (``docs/design.md``, "Search backends").

``qdrant-client`` is an optional dependency (``pip install 'lookalike[qdrant]'``): nothing
imports it until a Qdrant index is built, exported to or opened.
"""

from __future__ import annotations

from lookalike.search.qdrant.manifest import MANIFEST, is_qdrant_folder

__all__ = ["MANIFEST", "is_qdrant_folder"]

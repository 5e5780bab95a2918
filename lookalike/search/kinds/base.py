"""What an index kind is: how to make, train, tune and shrink one kind of FAISS index.

A kind is a small class (one file in this folder) registered by name in ``kinds/__init__``;
``--kind`` takes its choices from that registry and ``--<option>`` flags from each kind's
``options``. The defaults here (train if untrained, rebuild on removal) suit any FAISS index,
so a new kind often only says how to ``create`` its empty index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import faiss
import numpy as np

from lookalike.search.idmap import inner_index, stored_ids, stored_vectors, with_ids

if TYPE_CHECKING:
    from lookalike.search.spec import IndexSpec


@dataclass(frozen=True)
class KindOption:
    """One integer option of a kind: ``IndexSpec(name=...)`` and the flag ``--name-with-dashes``.

    Attributes:
        name: the option's name (unique across kinds; a kind may reuse another kind's option
            object to share it).
        default: its value when not given.
        help: one line for ``--help``.
        minimum: the smallest value allowed.
        at_search: a search-time knob (recall against speed) that may differ for one
            session: ``Index.open(search_options=...)``, ``lookalike search --name``.
    """

    name: str
    default: int
    help: str
    minimum: int = 1
    at_search: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


class IndexKind:
    """Base of the index kinds. Subclasses set ``name``, ``summary``, ``options`` and
    implement ``create``; the other methods have defaults that work for any FAISS index."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for --help
    options: ClassVar[tuple[KindOption, ...]] = ()

    def create(self, dim: int, metric: int, n: int, spec: IndexSpec) -> faiss.Index:
        """An empty (possibly untrained) index for ``n`` vectors of dimension ``dim``,
        searching by the FAISS metric ``metric`` (``faiss.METRIC_*``)."""
        raise NotImplementedError

    def train(self, inner: faiss.Index, vectors: np.ndarray) -> None:
        """Train an untrained ``inner`` on (a sample of) the vectors it will hold."""
        inner.train(vectors)

    def configure(self, inner: faiss.Index, spec: IndexSpec) -> None:
        """Apply search-time options to ``inner`` (built, or read from disk) and make its
        vectors readable by position. Nothing to do by default."""

    def build(self, vectors: np.ndarray, ids: np.ndarray, metric: int,
              spec: IndexSpec) -> faiss.IndexIDMap2:
        """An id-mapped index of this kind holding ``vectors`` (N, D) under ``ids`` (N,)."""
        inner = self.create(vectors.shape[1], metric, len(vectors), spec)
        return self.fill(inner, vectors, ids, spec)

    def fill(self, inner: faiss.Index, vectors: np.ndarray, ids: np.ndarray,
             spec: IndexSpec) -> faiss.IndexIDMap2:
        """Train ``inner`` if it needs it, add ``vectors`` as ``ids``, configure."""
        if not inner.is_trained:
            self.train(inner, vectors)
        index = with_ids(inner, vectors, ids)
        self.configure(inner_index(index), spec)
        return index

    def emptied(self, inner: faiss.Index, spec: IndexSpec, n: int) -> faiss.Index:
        """An empty index to refill with the ``n`` vectors left after a removal: by default
        a new one (graphs such as HNSW cannot drop nodes)."""
        return self.create(inner.d, inner.metric_type, n, spec)

    def remove(self, index: faiss.IndexIDMap2, ids: np.ndarray,
               spec: IndexSpec) -> faiss.IndexIDMap2:
        """``index`` without the items ``ids``: by default rebuilt from the others."""
        self.configure(inner_index(index), spec)  # a copy may not be readable by position yet
        keep_ids = stored_ids(index)
        keep = ~np.isin(keep_ids, ids)
        vectors = stored_vectors(index)[keep]
        inner = self.emptied(inner_index(index), spec, len(vectors))
        return self.fill(inner, vectors, keep_ids[keep], spec)

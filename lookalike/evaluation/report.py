"""Retrieval metrics of a set of embeddings: one exact k-NN pass, scored block by block.

Leave-one-out (each item queries all the others) unless a query/gallery split is given.
The (Q, k) neighbour table is never held whole: each block of queries is scored and only
its per-query values are kept, so memory stays O(block * gallery) even when k = R is large,
and the averages do not depend on the block size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lookalike.distances import Distance, get_distance
from lookalike.errors import ConfigError, DataError
from lookalike.evaluation import metrics as m
from lookalike.evaluation.knn import iter_knn


@dataclass(frozen=True)
class RetrievalMetrics:
    """Means over the queries that have at least one relevant gallery item (R > 0)."""

    precision_at_1: float
    precision_at_k: dict[int, float] = field(default_factory=dict)
    recall_at_k: dict[int, float] = field(default_factory=dict)
    map_at_k: dict[int, float] = field(default_factory=dict)  # k > 1 (MAP@1 is P@1)
    r_precision: float = math.nan
    map_at_r: float = math.nan
    num_queries: int = 0  # queries scored
    num_skipped: int = 0  # queries with R = 0, left out as pytorch-metric-learning does

    def to_dict(self) -> dict[str, float | int]:
        """Flat JSON-ready mapping: precision_at_1, precision_at_5, recall_at_5, ..."""
        out: dict[str, float | int] = {"precision_at_1": self.precision_at_1}
        out.update({f"precision_at_{k}": v for k, v in self.precision_at_k.items()})
        out.update({f"recall_at_{k}": v for k, v in self.recall_at_k.items()})
        out.update({f"map_at_{k}": v for k, v in self.map_at_k.items()})
        out.update(r_precision=self.r_precision, map_at_r=self.map_at_r,
                   num_queries=self.num_queries, num_skipped=self.num_skipped)
        return out

    def format(self) -> str:
        """One line for logs: ``P@1 0.8123 | P@5 ... | R@5 ... | MAP@5 ... | MAP@R ...``."""
        parts = [f"P@1 {self.precision_at_1:.4f}"]
        parts += [f"P@{k} {v:.4f}" for k, v in self.precision_at_k.items() if k != 1]
        parts += [f"R@{k} {v:.4f}" for k, v in self.recall_at_k.items() if k != 1]
        parts += [f"MAP@{k} {v:.4f}" for k, v in self.map_at_k.items()]
        parts += [f"R-Prec {self.r_precision:.4f}", f"MAP@R {self.map_at_r:.4f}"]
        queries = f"{self.num_queries} queries"
        if self.num_skipped:
            queries += f" ({self.num_skipped} without a relevant item skipped)"
        return " | ".join([*parts, queries])


def _numpy(x: object) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def evaluate_embeddings(
    embeddings: object,
    labels: object,
    *,
    query_mask: object | None = None,
    gallery: tuple[object, object] | None = None,
    ks: Sequence[int] = (1, 5, 10),
    distance: str | Distance = "euclidean",
    chunk_size: int | None = None,
    backend: str = "faiss",
) -> RetrievalMetrics:
    """Precision@k, Recall@k, MAP@k, R-Precision and MAP@R of embeddings, ranked exactly
    (knn.py).

    Args:
        embeddings: (N, D) numpy array or tensor.  labels: (N,).
        query_mask: (N,) bool: those items query the others (the gallery is ~query_mask).
        gallery: (gallery_embeddings (M, D), gallery_labels (M,)): ``embeddings`` are then
            the queries. Neither given: leave-one-out over ``embeddings``.
        ks: cut-offs for Precision@k, Recall@k and MAP@k (k > 1); a k above the gallery
            size is capped.
        distance: the registered distance to rank by (lookalike.distances): the one the
            model was trained with (``EmbedderConfig.distance``).
        chunk_size: queries per k-NN block (default: about 64 MB of float64 scores).
        backend: k-NN candidates from "faiss" or "torch" (same exact ranking; knn.py).
    """
    distance = get_distance(distance)  # an unknown name fails before any work
    emb, lab = _numpy(embeddings), _numpy(labels)
    if lab.ndim != 1:
        raise DataError(f"labels must be 1-D (N,), got shape {lab.shape}")
    if len(emb) != len(lab):
        raise DataError(f"{len(emb)} embeddings but {len(lab)} labels")
    if query_mask is not None and gallery is not None:
        raise ConfigError("pass either query_mask or gallery, not both")
    if not ks or min(ks) < 1:
        raise ConfigError(f"ks must be positive cut-offs, got {tuple(ks)}")
    ks = sorted(set(ks) | {1})
    leave_one_out = query_mask is None and gallery is None
    if gallery is not None:
        g_emb, g_lab = (_numpy(x) for x in gallery)
        if len(g_emb) != len(g_lab):
            raise DataError(f"{len(g_emb)} gallery embeddings but {len(g_lab)} gallery labels")
    elif query_mask is not None:
        mask = _numpy(query_mask)
        if mask.dtype != bool or mask.shape != lab.shape:
            raise DataError(f"query_mask must be a bool array shaped like labels {lab.shape}, "
                            f"got {mask.dtype} {mask.shape}")
        emb, lab, g_emb, g_lab = emb[mask], lab[mask], emb[~mask], lab[~mask]
    else:
        g_emb, g_lab = emb, lab
    r = m.relevant_counts(lab, g_lab, leave_one_out=leave_one_out)
    scored = np.flatnonzero(r > 0)  # queries that can retrieve something relevant
    map_ks = [k for k in ks if k > 1]  # MAP@1 is P@1
    if len(scored) == 0:
        nan = dict.fromkeys(ks, math.nan)
        return RetrievalMetrics(math.nan, nan, dict(nan), dict.fromkeys(map_ks, math.nan),
                                num_skipped=len(lab))
    available = len(g_emb) - int(leave_one_out)
    k_search = min(max(max(ks), int(r.max())), available)
    # P@k..., R@k..., MAP@k (k > 1)..., R-Prec, MAP@R
    per_query = np.zeros((2 * len(ks) + len(map_ks) + 2, len(scored)))
    blocks = iter_knn(emb[scored], k_search, g_emb, distance=distance, chunk_size=chunk_size,
                      backend=backend, exclude=scored if leave_one_out else None)
    for block in blocks:
        at = slice(block.start, block.start + len(block.indices))
        rows = scored[at]
        knn_labels, query_labels, r_block = g_lab[block.indices], lab[rows], r[rows]
        values = [m.precision_at_k(knn_labels, query_labels, min(k, k_search)) for k in ks]
        values += [m.recall_at_k(knn_labels, query_labels, min(k, k_search)) for k in ks]
        values += [m.map_at_k(knn_labels, query_labels, r_block, min(k, k_search))
                   for k in map_ks]
        values += [m.r_precision(knn_labels, query_labels, r_block),
                   m.map_at_r(knn_labels, query_labels, r_block)]
        per_query[:, at] = values
    means = per_query.mean(axis=1).tolist()  # one sum per metric: block size cannot change it
    return RetrievalMetrics(
        precision_at_1=means[0],
        precision_at_k=dict(zip(ks, means[: len(ks)], strict=True)),
        recall_at_k=dict(zip(ks, means[len(ks) : 2 * len(ks)], strict=True)),
        map_at_k=dict(zip(map_ks, means[2 * len(ks) : -2], strict=True)),
        r_precision=means[-2],
        map_at_r=means[-1],
        num_queries=len(scored),
        num_skipped=len(lab) - len(scored),
    )

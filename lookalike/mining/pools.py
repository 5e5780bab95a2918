"""Offline hard-positive / hard-negative pools: the mining half of lookalike's hybrid strategy.

Every anchor i of the N training items (embedded by a mining model) keeps the ``k_pos``
farthest items of its own class and the ``k_neg`` nearest items of the other classes
(DESIGN 2.1), optionally after skipping the very hardest share of each, which is often label
noise or near-duplicates (FaceNet, Schroff et al. 2015). The batch sampler later injects
items drawn from these pools into each anchor's batch.

The fast path never builds the N x N matrix. Items are sorted by class once, so each class
is one contiguous range and the own-class columns of an anchor block are one slice. Anchor
blocks x column chunks of float32 scores are cut down to a few candidates per anchor (group
extremes first, so top-k reads a few columns, not all), and the candidates are re-ranked
with exact float64 distances. ``mine_pools_naive`` is the full-matrix oracle.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from lookalike.distances import METRICS, pairwise_distance
from lookalike.errors import ConfigError, DataError
from lookalike.files import atomic_path

MARGIN = 8  # float32 candidates kept beyond each end of a pool, re-ranked in float64
GROUP = 32  # columns per group in the group-extreme prefilter of a top-k
BLOCK_ELEMENTS = 1 << 25  # float32 scores per anchor block x column chunk (128 MB)
FORMAT = "lookalike-pools/1"
ARRAYS = ("positive_index", "positive_distance", "negative_index", "negative_distance")
INF = float("inf")


@dataclass(frozen=True)
class PoolConfig:
    """How many hard positives / negatives each anchor keeps, and which band of them.

    Positives are ranked farthest first, negatives nearest first. Before taking k, each
    anchor skips ``max(skip_*_min, floor(skip_* x its candidate count))`` of the hardest,
    but always leaves at least one candidate. Bands guard against label noise (DESIGN 2.3):
    ``skip_pos_min=1`` takes the 2nd..(k+1)th farthest positives.
    """

    k_pos: int = 5
    k_neg: int = 5
    skip_pos: float = 0.0
    skip_neg: float = 0.0
    skip_pos_min: int = 0
    skip_neg_min: int = 0
    metric: str = "euclidean"

    def __post_init__(self) -> None:
        for name in ("k_pos", "k_neg", "skip_pos_min", "skip_neg_min"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"PoolConfig.{name} must be an integer >= 0, got {value!r}")
        for name in ("skip_pos", "skip_neg"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ConfigError(f"PoolConfig.{name} must be a fraction in [0, 1), got {value!r}")
        if self.metric not in METRICS:
            raise ConfigError(f"PoolConfig.metric {self.metric!r} is not one of {METRICS}")

    def skips(self, counts: np.ndarray, positive: bool) -> np.ndarray:
        """Hardest candidates to skip per anchor, given each anchor's candidate count (N,)."""
        fraction, least = ((self.skip_pos, self.skip_pos_min) if positive
                           else (self.skip_neg, self.skip_neg_min))
        skip = np.maximum(least, np.floor(fraction * counts + 1e-9).astype(np.int64))
        return np.minimum(skip, np.maximum(counts - 1, 0))


@dataclass
class Pools:
    """Per-anchor pools of item indices (-1 = none) and their distances (nan = none).

    Arrays: positive_index (N, k_pos) int64, positive_distance (N, k_pos) float32,
    negative_index (N, k_neg) int64, negative_distance (N, k_neg) float32; rows are
    anchors in dataset order, hardest first. ``extra`` holds arrays saved alongside
    (e.g. the labels the pools were mined with).
    """

    positive_index: np.ndarray
    positive_distance: np.ndarray
    negative_index: np.ndarray
    negative_distance: np.ndarray
    config: PoolConfig
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.positive_index)

    def problem(self) -> str | None:
        """What makes these arrays inconsistent (shapes, dtypes, -1 vs nan), or None."""
        n = len(self.positive_index)
        for kind, k in (("positive", self.config.k_pos), ("negative", self.config.k_neg)):
            index, dist = getattr(self, f"{kind}_index"), getattr(self, f"{kind}_distance")
            if index.shape != (n, k) or dist.shape != (n, k):
                return (f"{kind} arrays have shapes {index.shape} and {dist.shape}, "
                        f"expected ({n}, {k}) from the config")
            if index.dtype.kind not in "iu" or dist.dtype.kind != "f":
                return f"{kind} arrays have dtypes {index.dtype} and {dist.dtype}"
            if index.size and (index.min() < -1 or index.max() >= n):
                return f"{kind}_index holds values outside [-1, {n})"
            if not np.array_equal(index == -1, np.isnan(dist)):
                return f"{kind}_distance is not nan exactly where {kind}_index is -1"
        return None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write an .npz atomically; the config goes in as a JSON string, no pickles."""
        arrays = {name: np.asarray(getattr(self, name)) for name in ARRAYS}
        for key, value in self.extra.items():
            arrays[f"extra_{key}"] = np.asarray(value)
            if arrays[f"extra_{key}"].dtype.hasobject:
                raise DataError(f"{path}: extra array {key!r} holds Python objects")
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, format=np.array(FORMAT),
                     config=np.array(json.dumps(asdict(self.config))), **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Pools:
        """Read pools written by ``save``; DataError naming the file if anything is off."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except FileNotFoundError:
            raise DataError(f"{path}: no such pools file") from None
        except (OSError, ValueError, EOFError, KeyError, AttributeError, TypeError,
                zipfile.BadZipFile, zlib.error) as exc:
            raise DataError(f"{path}: not a readable pools .npz file ({exc})") from None
        if str(arrays.get("format", "")) != FORMAT:
            raise DataError(f"{path}: not a lookalike pools file (no format {FORMAT!r})")
        missing = [key for key in ("config", *ARRAYS) if key not in arrays]
        if missing:
            raise DataError(f"{path}: pools file lacks arrays {', '.join(missing)}")
        try:
            config = PoolConfig(**json.loads(str(arrays["config"])))
        except (ValueError, TypeError, ConfigError) as exc:
            raise DataError(f"{path}: bad pools config ({exc})") from None
        extra = {key[6:]: value for key, value in arrays.items() if key.startswith("extra_")}
        pools = cls(*(arrays[key] for key in ARRAYS), config=config, extra=extra)
        problem = pools.problem()
        if problem:
            raise DataError(f"{path}: {problem}")
        pools.positive_index = pools.positive_index.astype(np.int64)
        pools.negative_index = pools.negative_index.astype(np.int64)
        pools.positive_distance = pools.positive_distance.astype(np.float32)
        pools.negative_distance = pools.negative_distance.astype(np.float32)
        return pools


def prepare_inputs(embeddings: np.ndarray | Tensor, labels: np.ndarray | Tensor,
             metric: str) -> tuple[Tensor, np.ndarray]:
    """Checked float64 embeddings (unit rows for cosine) and dense class codes (N,).

    Raises DataError for a non-(N, D) or non-finite array, labels of another length, or a
    zero row under the cosine metric.
    """
    x = torch.as_tensor(embeddings).detach().cpu().to(torch.float64)
    if x.ndim != 2 or len(x) == 0:
        raise DataError(f"embeddings must be (N, D) with N >= 1, got shape {tuple(x.shape)}")
    finite = torch.isfinite(x).all(dim=1)
    if not finite.all():
        raise DataError(f"embeddings row {int((~finite).nonzero()[0])} is not finite")
    y = np.asarray(labels.detach().cpu() if isinstance(labels, Tensor) else labels)
    if y.shape != (len(x),):
        raise DataError(f"labels must have shape ({len(x)},), got {y.shape}")
    codes = np.unique(y, return_inverse=True)[1].reshape(-1).astype(np.int64)
    if metric == "cosine":
        norm = x.norm(dim=1, keepdim=True)
        if (norm == 0).any():
            raise DataError(f"embeddings row {int((norm[:, 0] == 0).nonzero()[0])} is zero: "
                            "its cosine distance is undefined")
        x = x / norm
    return x, codes


def _exact(ref: Tensor, anchors: Tensor, cands: Tensor, metric: str) -> Tensor:
    """Float64 distances (B, W) from anchors (B,) to candidates (B, W), by differences."""
    a, c = ref[anchors][:, None, :], ref[cands]  # (B, 1, D), (B, W, D)
    if metric == "cosine":  # ref rows are unit vectors
        return 1.0 - (a * c).sum(-1)
    squared = (c - a).pow(2).sum(-1)
    return squared.sqrt() if metric == "euclidean" else squared


def _take(index: Tensor, dist: Tensor, first: Tensor, skip: Tensor, count: Tensor,
          k: int) -> tuple[Tensor, Tensor]:
    """Columns first..first+k of exactly ranked rows; -1 / nan past each anchor's count."""
    cols = (first[:, None] + torch.arange(k)).clamp_max(index.shape[1] - 1)  # (B, k)
    valid = skip[:, None] + torch.arange(k) < count[:, None]
    picked = torch.where(valid, index.gather(1, cols), -1)
    return picked, torch.where(valid, dist.gather(1, cols), torch.nan).float()


def _select(ref: Tensor, anchors: Tensor, cands: Tensor, count: Tensor, skip: Tensor, k: int,
            farthest: bool, metric: str) -> tuple[Tensor, Tensor]:
    """Exact pools (B, k) from candidates (B, K) in approximate (float32) rank order.

    The window of approximate ranks [skip - MARGIN, skip + k + MARGIN) is re-ranked in
    float64, ties by smaller index; ranks at or past ``count`` are not candidates.
    """
    if cands.shape[1] == 0 or k == 0:
        return torch.full((len(anchors), k), -1), torch.full((len(anchors), k), torch.nan)
    first = (skip - MARGIN).clamp_min(0)
    rank = first[:, None] + torch.arange(k + 2 * MARGIN)  # (B, W)
    ok = (rank < count[:, None]) & (rank < cands.shape[1])
    window = cands.gather(1, rank.clamp_max(cands.shape[1] - 1))
    dist = _exact(ref, anchors, window, metric).masked_fill(~ok, -INF if farthest else INF)
    by_index = window.argsort(dim=1, stable=True)
    window, dist = window.gather(1, by_index), dist.gather(1, by_index)
    by_dist = dist.argsort(dim=1, descending=farthest, stable=True)
    window, dist = window.gather(1, by_dist), dist.gather(1, by_dist)
    return _take(window, dist, skip - first, skip, count, k)


def _extreme(scores: Tensor, kk: int, largest: bool) -> tuple[Tensor, Tensor]:
    """The kk largest / smallest entries of each row of scores (B, C), unsorted.

    The kk extreme entries lie in the kk groups (of g adjacent columns) whose own extreme
    is most extreme, so one amin/amax pass shrinks the top-k to kk x g columns; worth it
    only when that is a small share of the row (top-k costs much per row here).
    """
    cols = scores.shape[1]
    kk, g = min(kk, cols), GROUP
    while g >= 4 and 8 * kk * g > cols:
        g //= 2
    if g < 4:
        return scores.topk(kk, dim=1, largest=largest, sorted=False)
    main = cols - cols % g
    grouped = scores[:, :main].unflatten(1, (main // g, g))  # (B, C/g, g)
    ext = grouped.amax(2) if largest else grouped.amin(2)
    top = ext.topk(kk, dim=1, largest=largest, sorted=False).indices  # (B, kk)
    cand = grouped.gather(1, top[:, :, None].expand(-1, -1, g)).flatten(1)  # (B, kk*g)
    values, pos = torch.cat([cand, scores[:, main:]], dim=1).topk(
        kk, dim=1, largest=largest, sorted=False)
    in_group = top.gather(1, (pos // g).clamp_max(kk - 1)) * g + pos % g
    return values, torch.where(pos < kk * g, in_group, pos - kk * g + main)


def _ranked(values: list[Tensor], index: list[Tensor], kk: int, largest: bool,
            rows: int) -> Tensor:
    """Column positions (B, <=kk) of the best candidates over all chunks, best first."""
    if not values:
        return torch.empty(rows, 0, dtype=torch.long)
    merged = torch.cat(values, dim=1)
    pos = merged.topk(min(kk, merged.shape[1]), dim=1, largest=largest, sorted=True).indices
    return torch.cat(index, dim=1).gather(1, pos)


def _scan(left: Tensor, right: Tensor, labels: Tensor, span: tuple[int, int],
          rows: tuple[int, int], kk_pos: int, kk_neg: int, buffer: Tensor
          ) -> tuple[Tensor, Tensor]:
    """Approximate candidates of one anchor block, as sorted positions ranked best first.

    Scores ``left_i . right_j = |w_j|^2 - 2 w_i.w_j`` are the squared distance less a
    per-row constant, one BLAS call per chunk into ``buffer``. Negatives scan every column
    with the own-class slice at +inf; positives scan only ``span``, the own-class columns
    of the block, with other classes and the anchor itself at -inf.
    """
    (r0, r1), (lo, hi) = rows, span
    lab, chunk = labels[r0:r1], len(buffer) // (r1 - r0)
    c_start, c_stop = (0, len(right)) if kk_neg else (lo, hi if kk_pos else lo)
    found: tuple[list[Tensor], ...] = ([], [], [], [])
    for c0 in range(c_start, c_stop, chunk):
        c1 = min(c0 + chunk, c_stop)
        scores = buffer[:(r1 - r0) * (c1 - c0)].view(r1 - r0, c1 - c0)  # (B, C)
        torch.mm(left[r0:r1], right[c0:c1].T, out=scores)
        s0, s1 = max(c0, lo), min(c1, hi)
        if s0 < s1:
            own = scores[:, s0 - c0:s1 - c0]  # view: own-class columns live here
            same = lab[:, None] == labels[None, s0:s1]  # (B, S)
            if kk_pos:
                positive = same.clone()
                positive.diagonal(offset=r0 - s0).fill_(False)  # the anchor itself
                values, cols = _extreme(own.masked_fill(~positive, -INF), kk_pos, True)
                found[0].append(values)
                found[1].append(cols + s0)
            if kk_neg:
                own.masked_fill_(same, INF)
        if kk_neg:
            values, cols = _extreme(scores, kk_neg, False)
            found[2].append(values)
            found[3].append(cols + c0)
    return (_ranked(found[0], found[1], kk_pos, True, r1 - r0),
            _ranked(found[2], found[3], kk_neg, False, r1 - r0))


def _faiss_negatives(work: np.ndarray, start: np.ndarray, stop: np.ndarray,
                     kk: np.ndarray) -> Iterator[tuple[int, int, Tensor]]:
    """Per class: (first, stop, candidates) of its anchors against all other classes."""
    try:
        import faiss
    except ImportError:
        raise ConfigError("backend 'faiss' needs faiss: pip install faiss-cpu") from None
    for first, last, want in zip(start, stop, kk, strict=True):
        others = np.concatenate([work[:first], work[last:]])
        if len(others) == 0 or want == 0:
            continue
        _, found = faiss.knn(work[first:last], others, int(min(want, len(others))))
        found = np.where(found >= first, found + (last - first), found).clip(0)
        yield int(first), int(last), torch.from_numpy(found)


def _use_faiss(backend: str, n_classes: int, kk_neg: int) -> bool:
    """Whether negatives go through faiss: asked for, or "auto" where it measured faster.

    On 2 cores faiss.knn against each class's complement matched the torch blocks with no
    skip and beat them by about 25% with a wide skip band (k >= 64), but costs one pass over
    the data per class, so "auto" takes it only for a few classes and wide bands.
    """
    if backend != "auto":
        return backend == "faiss"
    if n_classes > 20 or kk_neg < 64:
        return False
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def mine_pools(embeddings: np.ndarray | Tensor, labels: np.ndarray | Tensor,
               config: PoolConfig | None = None, *, block_size: int = 512,
               backend: Literal["auto", "torch", "faiss"] = "auto",
               progress: bool = False) -> Pools:
    """Hard-positive and hard-negative pools of every anchor, in O(N k) memory.

    Guarantee: the pools equal ``mine_pools_naive`` (exact float64 ranking, ties to the
    smaller index) unless more than MARGIN items lie within float32 rounding (~1e-6
    relative) of a pool boundary; distances are exact float64 values stored as float32.
    Args:
        embeddings: (N, D) embeddings from the mining model.  labels: (N,) class labels.
        config: pool sizes, skip bands and metric (PoolConfig() when None).
        block_size: anchors per block; a block's scores use at most 128 MB.
        backend: "torch" (blocked scores), "faiss" (faiss.knn for the negatives of each
            class; for few large classes) or "auto" (see ``_use_faiss``).
        progress: show a tqdm bar over anchor blocks.
    Returns:
        Pools, rows in dataset order.
    """
    config = config or PoolConfig()
    if backend not in ("auto", "torch", "faiss"):
        raise ConfigError(f"backend {backend!r} is not one of 'auto', 'torch', 'faiss'")
    if block_size < 1:
        raise ConfigError(f"block_size must be >= 1, got {block_size}")
    ref, codes = prepare_inputs(embeddings, labels, config.metric)
    n, metric = len(ref), config.metric
    order_np = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    stop = np.cumsum(sizes)
    start = stop - sizes
    lab = codes[order_np]
    n_pos, n_neg = sizes[lab] - 1, n - sizes[lab]  # candidates per sorted position
    skip_pos, skip_neg = config.skips(n_pos, True), config.skips(n_neg, False)
    work = ref if metric == "cosine" else ref - ref.mean(dim=0)
    work = work[torch.from_numpy(order_np)]  # (N, D) float64, class-sorted
    sq_norm = work.pow(2).sum(dim=1, keepdim=True).float()  # (N, 1)
    if not torch.isfinite(sq_norm).all():
        raise DataError("embeddings are too large for float32 distances; rescale them")
    left = torch.cat([work.float(), torch.ones_like(sq_norm)], dim=1)  # (N, D + 1)
    right = torch.cat([-2.0 * work.float(), sq_norm], dim=1)  # (N, D + 1)
    order, labels_t = torch.from_numpy(order_np), torch.from_numpy(lab)
    t_pos, t_skip_pos = torch.from_numpy(n_pos), torch.from_numpy(skip_pos)
    t_neg, t_skip_neg = torch.from_numpy(n_neg), torch.from_numpy(skip_neg)
    use_faiss = _use_faiss(backend, len(sizes), int(skip_neg.max()) + config.k_neg + MARGIN)
    out = [np.full((n, k), fill, dtype) for k in (config.k_pos, config.k_neg)
           for fill, dtype in ((-1, np.int64), (np.nan, np.float32))]
    chunk = max(1, BLOCK_ELEMENTS // block_size)
    buffer = torch.empty(min(block_size, n) * min(chunk, n))

    def store(at: int, rows: slice, cands: Tensor, positive: bool) -> None:
        count, skip = (t_pos, t_skip_pos) if positive else (t_neg, t_skip_neg)
        k = config.k_pos if positive else config.k_neg
        index, dist = _select(ref, order[rows], order[cands], count[rows], skip[rows], k,
                              positive, metric)
        out[at][order_np[rows]], out[at + 1][order_np[rows]] = index.numpy(), dist.numpy()

    blocks = range(0, n, block_size)
    if progress:
        from tqdm import tqdm
        blocks = tqdm(blocks, desc="mining pools", unit="block")
    for r0 in blocks:
        r1 = min(r0 + block_size, n)
        kk_pos = int(skip_pos[r0:r1].max()) + config.k_pos + MARGIN if config.k_pos else 0
        kk_neg = int(skip_neg[r0:r1].max()) + config.k_neg + MARGIN
        kk_neg = 0 if use_faiss or not config.k_neg else kk_neg
        span = (int(start[lab[r0]]), int(stop[lab[r1 - 1]]))
        pos, neg = _scan(left, right, labels_t, span, (r0, r1), kk_pos, kk_neg, buffer)
        if config.k_pos:
            store(0, slice(r0, r1), pos, True)
        if kk_neg:
            store(2, slice(r0, r1), neg, False)
    if use_faiss and config.k_neg:
        want = skip_neg[start] + config.k_neg + MARGIN
        base = left[:, :-1].contiguous().numpy()  # float32 class-sorted vectors
        for first, last, cands in _faiss_negatives(base, start, stop, want):
            for r0 in range(first, last, block_size):
                r1 = min(r0 + block_size, last)
                store(2, slice(r0, r1), cands[r0 - first:r1 - first], False)
    return Pools(*out, config=config)


def mine_pools_naive(embeddings: np.ndarray | Tensor, labels: np.ndarray | Tensor,
                     config: PoolConfig | None = None, *, chunk: int = 512) -> Pools:
    """The oracle: the full (N, N) float64 distance matrix, each row sorted stably.

    Memory is 8 N^2 bytes plus a few chunk x N (7.4 GB at N = 30 000): for tests and
    benchmark references.
    Args:
        embeddings: (N, D).  labels: (N,).  config: as for ``mine_pools``.
        chunk: rows computed and sorted at a time.
    """
    config = config or PoolConfig()
    ref, codes = prepare_inputs(embeddings, labels, config.metric)
    n = len(ref)
    dist = torch.empty(n, n, dtype=torch.float64)  # the full matrix, filled in row chunks
    for r0 in range(0, n, chunk):
        dist[r0:r0 + chunk] = pairwise_distance(ref[r0:r0 + chunk], ref, config.metric)
    lab, sizes = torch.from_numpy(codes), np.bincount(codes)[codes]
    counts = {True: sizes - 1, False: n - sizes}
    out: list[np.ndarray] = []
    for positive, k in ((True, config.k_pos), (False, config.k_neg)):
        count = torch.from_numpy(counts[positive])
        skip = torch.from_numpy(config.skips(counts[positive], positive))
        index, values = np.full((n, k), -1, np.int64), np.full((n, k), np.nan, np.float32)
        for r0 in range(0, n, chunk) if k else ():
            rows = slice(r0, min(r0 + chunk, n))
            same = lab[rows, None] == lab[None, :]  # (R, N)
            if positive:
                same.diagonal(offset=r0).fill_(False)
            key = dist[rows].masked_fill(~same if positive else same, -INF if positive else INF)
            key, cols = key.sort(dim=1, descending=positive, stable=True)
            picked, near = _take(cols, key, skip[rows], skip[rows], count[rows], k)
            index[rows], values[rows] = picked.numpy(), near.numpy()
        out += [index, values]
    return Pools(*out, config=config)

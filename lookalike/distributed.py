"""Several processes, one run (``torchrun``): the process group, the global batch split
across ranks, embeddings gathered with their gradients, batch norm over the global batch.

Why each piece is needed for "the same answer as one process":

- The in-batch selection (batch-hard, semi-hard, batch-all, hybrid, contrastive pairs) must
  see the whole global P x K batch, so every rank gathers all embeddings with
  ``torch.distributed.nn.functional.all_gather``, whose backward sums the gradient of each
  slice over the ranks. Every rank computes the same loss on the global batch; the gather's
  backward gives each rank W times its slice's gradient, and DDP's average over W ranks
  turns that back into exactly the single-process gradient.
- Batch norm normalises with the statistics of the batch it sees; a rank sees only its
  slice. :class:`GlobalBatchNorm` all-reduces the sums (with gradients), so statistics and
  running averages are those of the global batch. (torch's SyncBatchNorm refuses CPU
  tensors, and the tests run on CPU with gloo.)
- Shards are contiguous slices in rank order, so gathering them restores the batch order.
"""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F
from torch import nn

# torch.distributed.nn.functional is the documented autograd-aware collective; 2.13 points
# to a private successor (_functional_collectives) and warns on every call.
warnings.filterwarnings("ignore", category=FutureWarning,
                        message=r"torch\.distributed\.nn\.functional\.")


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in the run: rank of world_size, over backend (none: alone)."""

    rank: int = 0
    world_size: int = 1
    backend: str = "none"
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def join_from_env(device: torch.device) -> ProcessGroup:
    """Join the process group torchrun describes in the environment (WORLD_SIZE, RANK,
    MASTER_ADDR, ...): NCCL for CUDA, gloo on the CPU. A plain run stays alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return ProcessGroup()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ProcessGroup(rank=dist.get_rank(), world_size=dist.get_world_size(),
                        backend=str(dist.get_backend()),
                        local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def leave_group() -> None:
    """Destroy the process group this process joined, if any, before the interpreter
    exits: left to the interpreter's shutdown, gloo's threads can outlive it and abort
    the process ("terminate called without an active exception", 1 run in 7 here)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def process_device(device: torch.device, group: ProcessGroup) -> torch.device:
    """The device this process runs on: under torchrun, "cuda" means this process's own GPU
    (``cuda:LOCAL_RANK``, made current for NCCL); an explicit index or the CPU stays."""
    if str(device) != "cuda" or not group.distributed:  # "cuda:1": the user named a GPU
        return device
    own = torch.device("cuda", group.local_rank)
    torch.cuda.set_device(own)
    return own


def current_group() -> ProcessGroup:
    """The group this process has joined (alone when none was initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return ProcessGroup()
    return ProcessGroup(rank=dist.get_rank(), world_size=dist.get_world_size(),
                        backend=str(dist.get_backend()),
                        local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def stop_on_sigterm() -> None:
    """Under torchrun, turn SIGTERM into KeyboardInterrupt: when one process fails or is
    killed, torchrun's agent stops the others with SIGTERM, and each then stops as on
    Ctrl-C (a training run commits its position) with one line instead of dying silently."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def lost_peer(error: BaseException) -> str | None:
    """One line for a collective that failed because another process of the run stopped
    (gloo: "Connection closed by peer"), or None for any other error."""
    text = str(error)
    from_gloo = isinstance(error, RuntimeError) and "/gloo/" in text  # gloo's own errors
    if not (isinstance(error, dist.DistError) or from_gloo):
        return None
    lines = text.strip().splitlines()
    cause = " ".join(lines[0].split()) if lines else type(error).__name__
    cause = cause.split("] ", 1)[-1].split(". ", 1)[0][:160]  # without gloo's source path
    rank = os.environ.get("RANK", "?")
    world = os.environ.get("WORLD_SIZE", "?")
    return (f"process {rank} of {world} lost contact with the others ({cause}): another "
            "process of the run failed or was killed, so every process stops")


def shard_bounds(items: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, stop) of rank's contiguous share of ``items``; shares differ by at most 1."""
    base, extra = divmod(items, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def gather_with_grad(local: torch.Tensor) -> torch.Tensor:
    """Every rank's ``local`` rows, concatenated in rank order; gradients flow back to each
    rank's own rows. Ranks may hold different numbers of rows (padded for the transfer)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    counts = gather_counts(len(local), local.device)
    longest = max(counts)
    padded = F.pad(local, (0,) * (2 * (local.dim() - 1)) + (0, longest - len(local)))
    parts = dist_fn.all_gather(padded)
    return torch.cat([part[:count] for part, count in zip(parts, counts, strict=True)])


def gather_counts(count: int, device: torch.device) -> list[int]:
    """Every rank's ``count``, in rank order."""
    mine = torch.tensor([count], device=device)
    everyone = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, mine)
    return [int(c) for c in everyone]


def gather(local: torch.Tensor) -> torch.Tensor:
    """Every rank's rows in rank order, without gradients (labels, indices, embeddings for
    evaluation)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    with torch.no_grad():
        return gather_with_grad(local.detach())


def broadcast_flag(flag: bool) -> bool:
    """The main process's ``flag``, on every rank (what the others pass is ignored)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) \
        if dist.get_backend() == "nccl" else torch.device("cpu")  # NCCL moves CUDA tensors only
    value = torch.tensor([int(flag)], device=device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def barrier() -> None:
    """Wait for every rank (alone: return at once)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the global batch across ranks.

    Same parameters and buffers as ``nn.BatchNorm1d/2d`` (a checkpoint does not change);
    in eval mode, or alone, it is plain batch norm.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            plain: torch.Tensor = super().forward(x)
            return plain
        return two_pass_batch_norm(self, x, lambda t: cast(torch.Tensor, dist_fn.all_reduce(t)))


def two_pass_batch_norm(norm: nn.modules.batchnorm._BatchNorm, x: torch.Tensor,
                        reduce: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Training-mode batch norm whose per-channel sums go through ``reduce`` (an all-reduce
    with gradient across ranks; the identity gives one process the same arithmetic).

    Two passes, as batch norm itself computes them: the mean, then the centred squares.
    The result equals ``F.batch_norm`` up to rounding. On an ill-conditioned batch that
    rounding is amplified: on a 7-image batch, one process's conv gradients moved by up to
    5% between this arithmetic and PyTorch's kernel (which of the two matched the ranks
    depended on the CPU), so the distributed tests use batches of 8 per class, where every
    arithmetic agrees to 1e-5 (tests/distributed/test_distributed_training.py).
    """
    dims = [0, *range(2, x.dim())]  # every axis but the channels
    shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
    count = torch.tensor([float(x.numel() // x.shape[1])], device=x.device, dtype=x.dtype)
    sums = reduce(torch.cat([x.sum(dims), count]))
    total = sums[-1]
    mean = sums[:-1] / total
    centred = x - mean.view(shape)
    var = reduce(centred.pow(2).sum(dims)) / total
    if norm.track_running_stats and norm.running_mean is not None \
            and norm.running_var is not None and norm.num_batches_tracked is not None:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            momentum = (1.0 / float(norm.num_batches_tracked) if norm.momentum is None
                        else norm.momentum)
            unbiased = var * total / (total - 1).clamp_min(1.0)
            norm.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
            norm.running_var.mul_(1 - momentum).add_(unbiased.detach(), alpha=momentum)
    y = centred / torch.sqrt(var.view(shape) + norm.eps)
    if norm.affine and norm.weight is not None and norm.bias is not None:
        y = y * norm.weight.view(shape) + norm.bias.view(shape)
    return y


class GlobalBatchNorm1d(GlobalBatchNorm, nn.BatchNorm1d):
    """BatchNorm1d over the global batch."""


class GlobalBatchNorm2d(GlobalBatchNorm, nn.BatchNorm2d):
    """BatchNorm2d over the global batch."""


def globalise_batchnorm(module: nn.Module) -> nn.Module:
    """Turn every BatchNorm1d/2d inside ``module`` into its global twin, in place: the same
    parameters, buffers and state-dict keys, so checkpoints load as plain batch norm."""
    for child in module.modules():
        if isinstance(child, GlobalBatchNorm):
            continue
        if type(child) is nn.BatchNorm2d:
            child.__class__ = GlobalBatchNorm2d
        elif type(child) is nn.BatchNorm1d:
            child.__class__ = GlobalBatchNorm1d
    return module

"""Functions that run inside spawned gloo processes (importable by the children)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _entry(rank: int, world: int, port: int, job: Callable[..., Any], out: str,
           args: tuple[Any, ...]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = job(rank, world, *args)
        torch.save(result, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def run_ranks(job: Callable[..., Any], world: int, tmp: Path, *args: Any) -> list[Any]:
    """Run ``job(rank, world, *args)`` in ``world`` gloo processes; their results by rank."""
    out = str(tmp / "result")
    root = str(Path(__file__).resolve().parents[2])  # the children import tests.distributed
    if root not in sys.path:  # spawned children take the parent's sys.path
        sys.path.insert(0, root)
    mp.spawn(_entry, args=(world, free_port(), job, out, args), nprocs=world, join=True)
    return [torch.load(f"{out}.{rank}", weights_only=False) for rank in range(world)]


def batchnorm_job(rank: int, world: int, x: torch.Tensor,
                  state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    from lookalike.distributed import globalise_batchnorm, shard_bounds

    bn = globalise_batchnorm(torch.nn.BatchNorm2d(x.shape[1]))
    bn.load_state_dict(state)
    bn.train()
    start, stop = shard_bounds(len(x), rank, world)
    local = x[start:stop].clone().requires_grad_()
    y = bn(local)
    weights = torch.arange(x.numel(), dtype=x.dtype).reshape(x.shape)[start:stop]
    (y * weights).sum().backward()  # this rank's share of the whole batch's loss
    grads = [p.grad.clone() for p in bn.parameters()]
    for p in bn.parameters():
        dist.all_reduce(p.grad)
    return {"y": y.detach(), "x_grad": local.grad, "weight_grad": bn.weight.grad,
            "bias_grad": bn.bias.grad, "running_mean": bn.running_mean,
            "running_var": bn.running_var, "local_grads": grads}


def gather_job(rank: int, world: int, x: torch.Tensor) -> dict[str, torch.Tensor]:
    from lookalike.distributed import gather_with_grad, shard_bounds

    start, stop = shard_bounds(len(x), rank, world)
    local = x[start:stop].clone().requires_grad_()
    everything = gather_with_grad(local)
    weights = torch.arange(everything.numel(), dtype=x.dtype).reshape(everything.shape)
    (everything * weights).sum().backward()
    return {"gathered": everything.detach(), "grad": local.grad}


def train_job(rank: int, world: int, data: str, out: str,
              options: dict[str, Any]) -> dict[str, Any]:
    """Train ``options`` on ``data`` in this rank; rank 0 reports what the run folder holds."""
    from safetensors.torch import load_file

    from lookalike.training.config import TrainConfig
    from lookalike.training.trainer import train

    config = TrainConfig.from_options(source=data, **options)
    result = train(config, out, show_progress=False, log=lambda _: None)
    if rank != 0:
        return {"records": result.records}
    return {"records": result.records,
            "weights": load_file(str(Path(out) / "last" / "model.safetensors"))}

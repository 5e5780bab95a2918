"""Functions that run inside spawned gloo processes (importable by the children)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
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
        torch.save(_tensors_for_arrays(result), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()
    # The result is on disk: skip the interpreter's teardown, where a gloo thread still
    # joinable aborts the child now and then (SIGABRT, "terminate called without an active
    # exception"; all three attempts of one fresh-clone run) after its work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_ranks(job: Callable[..., Any], world: int, tmp: Path, *args: Any,
              fresh: Sequence[Path] = ()) -> list[Any]:
    """Run ``job(rank, world, *args)`` in ``world`` gloo processes; their results by rank.

    ``fresh``: folders the job creates; an attempt that dies by a signal may leave them
    half written, so they are removed before the next attempt starts."""
    out = str(tmp / "result")
    root = str(Path(__file__).resolve().parents[2])  # the children import tests.distributed
    if root not in sys.path:  # spawned children take the parent's sys.path
        sys.path.insert(0, root)
    for attempt in range(3):  # gloo can abort at start-up (a port race): start again
        try:
            mp.spawn(_entry, args=(world, free_port(), job, out, args), nprocs=world,
                     join=True)
            break
        except mp.ProcessExitedException:
            if attempt == 2:
                raise
            for folder in fresh:
                shutil.rmtree(folder, ignore_errors=True)
    # weights_only: tensors and plain containers only, nothing is unpickled
    return [_arrays_for_tensors(torch.load(f"{out}.{rank}", weights_only=True))
            for rank in range(world)]


ARRAY = "__numpy_array__"


def _tensors_for_arrays(value: Any) -> Any:
    """numpy arrays as tagged tensors, numpy scalars as Python numbers (``weights_only``
    loading refuses numpy objects)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return {ARRAY: torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, np.generic):  # a numpy scalar: its Python value
        return value.item()
    if isinstance(value, dict):
        return {key: _tensors_for_arrays(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_tensors_for_arrays(item) for item in value)
    return value


def _arrays_for_tensors(value: Any) -> Any:
    """The inverse of :func:`_tensors_for_arrays`."""
    if isinstance(value, dict):
        if set(value) == {ARRAY}:
            return value[ARRAY].numpy()
        return {key: _arrays_for_tensors(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_arrays_for_tensors(item) for item in value)
    return value


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


def gradient_job(rank: int, world: int, data: str, options: dict[str, Any]
                 ) -> dict[str, torch.Tensor]:
    """One training step's gradients on the first global batch, through the real loop step
    (augmentation, slicing, gather, global batch norm, DDP); alone when world is 1."""
    return first_step_gradients(data, options)


def first_step_gradients(data: str, options: dict[str, Any]) -> dict[str, torch.Tensor]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as every rank: the pools must not depend on BLAS threads
    try:
        return _first_step_gradients(data, options)
    finally:
        torch.set_num_threads(threads)


def _first_step_gradients(data: str, options: dict[str, Any]) -> dict[str, torch.Tensor]:
    from lookalike.distributed import current_group, globalise_batchnorm
    from lookalike.training.config import TrainConfig
    from lookalike.training.fit import TrainingState, train_step
    from lookalike.training.strategy import build_plan
    from lookalike.training.trainer import embedder_config, open_data

    config = TrainConfig.from_options(source=data, **options)
    prepared = open_data(config, show_progress=False, log=lambda _: None)
    from lookalike.models import build_embedder
    from lookalike.training.augment import build_augment
    from lookalike.training.batches import batch_loader

    model = build_embedder(embedder_config(config, prepared), seed=config.machine.seed)
    group = current_group()
    step_model: torch.nn.Module = model
    if group.distributed:
        globalise_batchnorm(model)
        step_model = torch.nn.parallel.DistributedDataParallel(model)
    pairs = torch.Generator().manual_seed(1)
    plan = build_plan(config, prepared.train.collection.labels, pairs)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # keep the gradients, move nothing
    state = TrainingState(model=model, optimizer=optimizer, plan=plan,
                          load_batches=batch_loader(prepared.train, 0),
                          augment=build_augment(config),
                          generator=torch.Generator().manual_seed(5), pair_generator=pairs,
                          device=torch.device("cpu"), epochs=1, seed=0, group=group,
                          step_model=step_model)
    sampler = plan.pooled_sampler()
    if sampler is not None:  # hybrid: pools mined by the model (each rank embeds its share)
        from lookalike.mining.model import mine_with_model
        from lookalike.mining.pools import PoolConfig

        labels_all = prepared.train.collection.labels
        sampler.set_pools(mine_with_model(model, prepared.train, labels_all, PoolConfig(),
                                          progress=False).pools)
    strategy = plan.strategy_for(0)
    batch = next(iter(strategy.batches(0)))
    _, images, labels = next(state.load_batches([batch], 0))
    model.train()
    train_step(state, strategy.loss, images, labels)
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def shard_job(rank: int, world: int, data: str, checkpoint: str) -> dict[str, Any]:
    """Embed ``data`` in shares (the evaluation's path) and mine pools from it (the hybrid's
    path), with small batches so that each rank gets several, unevenly."""
    from lookalike.data import ImageDataset, open_collection
    from lookalike.mining.model import mine_with_model
    from lookalike.mining.pools import PoolConfig
    from lookalike.models import load_checkpoint
    from lookalike.models.sharded_embed import embed_everywhere

    model, _ = load_checkpoint(checkpoint)
    collection = open_collection(data)
    dataset = ImageDataset(collection, size=model.config.input_size,
                           channels=model.config.in_channels)
    embeddings = embed_everywhere(model, dataset, batch_size=5, progress=False)
    mined = mine_with_model(model, dataset, collection.labels,
                            PoolConfig(hard_positives=3, hard_negatives=4), progress=False)
    pools = mined.pools
    return {"embeddings": embeddings, "positive_index": pools.positive_index,
            "negative_index": pools.negative_index, "negative_distance": pools.negative_distance}


def index_build_job(rank: int, world: int, data: str, checkpoint: str, out: str,
                    chunk_items: int) -> dict[str, Any]:
    """Write an index of ``data`` from every rank (chunks of ``chunk_items``); rank 0
    reports its vectors, rows and what the build logged about resuming."""
    import lookalike.search.build as build
    from lookalike.search import Index

    build.CHUNK_ITEMS = chunk_items  # several chunks from a tiny folder
    log: list[str] = []
    Index.write(checkpoint, data, out, batch_size=5, progress=False, log=log.append)
    dist.barrier()
    return {**index_contents(out), "log": log} if rank == 0 else {}


def index_contents(folder: str) -> dict[str, Any]:
    """An index folder's ids, vectors and item rows, for comparing two builds."""
    from lookalike.search import Index
    from lookalike.search.vectors import stored_ids, stored_vectors

    with Index.open(folder) as index:
        ids = stored_ids(index.vectors)
        records = index.records(ids.tolist())
        return {"ids": ids, "vectors": stored_vectors(index.vectors),
                "records": [(r.id, r.source, r.path, r.label) for r in records.values()],
                "fingerprint": index.fingerprint, "kind": index.kind}

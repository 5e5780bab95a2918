"""The distributed pieces equal their single-process meaning (2 gloo processes on CPU)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
import torch

from lookalike.distributed import shard_bounds
from tests.distributed.workers import batchnorm_job, gather_job, run_ranks


@pytest.mark.parametrize(("items", "world"), [(10, 2), (11, 2), (7, 3), (2, 4), (0, 2)])
def test_shards_are_contiguous_and_cover_everything(items: int, world: int) -> None:
    bounds = [shard_bounds(items, rank, world) for rank in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == items
    assert all(a[1] == b[0] for a, b in pairwise(bounds))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("rows", [8, 7])  # equal and unequal shards
def test_gathering_keeps_the_order_and_sums_the_gradient_over_ranks(tmp_path: Path,
                                                                    rows: int) -> None:
    x = torch.randn(rows, 3, dtype=torch.float64)
    ranks = run_ranks(gather_job, 2, tmp_path, x)
    weights = torch.arange(x.numel(), dtype=x.dtype).reshape(x.shape)
    for rank, result in enumerate(ranks):
        assert torch.equal(result["gathered"], x)
        start, stop = shard_bounds(rows, rank, 2)
        # each rank's loss covers the whole batch; its backward sums both ranks' gradients
        torch.testing.assert_close(result["grad"], 2 * weights[start:stop])


def test_global_batchnorm_equals_batchnorm_over_the_whole_batch(tmp_path: Path) -> None:
    x = torch.randn(9, 4, 3, 3, dtype=torch.float32) * 3 + 1
    reference = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-1, 1)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    whole = x.clone().requires_grad_()
    y = reference(whole)
    (y * torch.arange(y.numel()).reshape(y.shape)).sum().backward()
    ranks = run_ranks(batchnorm_job, 2, tmp_path, x, state)
    torch.testing.assert_close(torch.cat([r["y"] for r in ranks]), y.detach(),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat([r["x_grad"] for r in ranks]), whole.grad,
                               rtol=1e-4, atol=1e-4)
    for result in ranks:
        torch.testing.assert_close(result["weight_grad"], reference.weight.grad, rtol=1e-4,
                                   atol=1e-4)
        torch.testing.assert_close(result["running_mean"], reference.running_mean)
        torch.testing.assert_close(result["running_var"], reference.running_var)

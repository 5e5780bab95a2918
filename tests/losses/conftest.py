"""Tiny seeded batches and PML reference losses for the loss and mining tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

BatchFactory = Callable[..., tuple[torch.Tensor, torch.Tensor]]

# (class sizes, dim, quantise): P x K, uneven classes with singletons, exact ties.
BATCHES = {
    "pk": ([4] * 8, 6, False),
    "uneven+singletons": ([1, 5, 2, 1, 9, 3, 1, 6], 5, False),
    "ties": ([6] * 8, 3, True),
}


def compare(ours, pml, emb, labels, value_and_grad, rtol=1e-9, atol=1e-12):
    """Assert our loss and PML's agree in value (rtol, atol) and gradient (100x looser);
    return our (value, gradient)."""
    v_ours, g_ours = value_and_grad(ours, emb, labels)
    v_pml, g_pml = value_and_grad(pml, emb, labels)
    torch.testing.assert_close(v_ours, v_pml, rtol=rtol, atol=atol)
    torch.testing.assert_close(g_ours, g_pml, rtol=rtol * 100, atol=atol * 100)
    return v_ours, g_ours


@pytest.fixture
def make_batch() -> BatchFactory:
    """Factory: (embeddings (B, D) float64, labels (B,)) from class sizes, shuffled, seeded.

    quantise=True draws coordinates from {-1, 0, 1}: many exactly tied distances and
    duplicate rows, computed exactly by every distance implementation.
    """

    def make(
        sizes: list[int], dim: int = 4, seed: int = 0, quantise: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        labels = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
        labels = labels[torch.randperm(len(labels), generator=gen)]
        if quantise:
            emb = torch.randint(-1, 2, (len(labels), dim), generator=gen).double()
        else:
            emb = torch.randn(len(labels), dim, generator=gen, dtype=torch.float64)
        return emb, labels

    return make


@pytest.fixture
def pml_loss() -> Callable[..., Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """Factory: PML's equivalent of TripletLoss(selection, metric, margin, soft).

    PML's smooth loss is softplus(d_ap - d_an + margin); ours drops the margin when
    soft, so PML gets margin 0 then. Cosine uses PML's CosineSimilarity, whose inverted
    semantics (sim_an - sim_ap) equal our d_ap - d_an with d = 1 - sim.
    """
    pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import distances, losses, miners

    def make(selection: str, metric: str = "euclidean", margin: float = 0.2, soft: bool = False):
        if metric == "cosine":
            distance = distances.CosineSimilarity()
        else:
            power = 2 if metric == "squared_euclidean" else 1
            distance = distances.LpDistance(normalize_embeddings=False, p=2, power=power)
        loss = losses.TripletMarginLoss(
            margin=0.0 if soft else margin, smooth_loss=soft, distance=distance
        )
        if selection == "batch-all":
            miner = None
        elif selection == "batch-hard":
            miner = miners.BatchHardMiner(distance=distance)
        elif selection == "semi-hard-all":
            miner = miners.TripletMarginMiner(
                margin=margin, type_of_triplets="semihard", distance=distance
            )
        else:
            raise ValueError(selection)

        def run(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return loss(emb, labels, None if miner is None else miner(emb, labels))

        run.miner = miner  # type: ignore[attr-defined]
        return run

    return make


@pytest.fixture
def value_and_grad() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """Factory: (loss value, d loss / d embeddings) of fn(embeddings, labels) on a fresh leaf."""

    def run(fn, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        leaf = emb.detach().clone().requires_grad_(True)
        out = fn(leaf, labels)
        loss = out.loss if hasattr(out, "loss") else out
        (grad,) = torch.autograd.grad(loss, leaf, allow_unused=False)
        return loss.detach(), grad

    return run

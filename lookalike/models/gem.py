"""Global pooling of a backbone's final feature map: average, or generalised mean (GeM).

GeM (Radenović, Tolias and Chum, "Fine-tuning CNN Image Retrieval with No Human
Annotation", TPAMI 2018) pools each channel c of a (h, w) map as

    f_c = ( mean_{i,j} max(x_cij, eps)^p )^(1/p)

with one learnable exponent p: p = 1 is average pooling and p -> inf max pooling, so the
network learns how much to favour the strongest local responses, which helps retrieval of
objects that fill only part of the image. The paper initialises p at 3.
"""

from __future__ import annotations

import torch
from torch import nn

from lookalike.errors import ConfigError

# --pooling choices; "avg" is the default; "flatten" keeps the map's layout (small CNN only)
POOLINGS = ("avg", "gem", "flatten")


class GlobalAvgPool(nn.Module):
    """(B, C, h, w) -> (B, C) spatial means; no parameters, so state dicts do not change."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class GeM(nn.Module):
    """Generalised-mean pooling with a learnable exponent shared by all channels.

    ``p`` is an ordinary parameter of the backbone: it is frozen with it, trained at the
    backbone's learning rate, and weight decay (``--weight-decay``) pulls it towards 0.

    Args:
        p: initial exponent (3 in the paper); must be > 0.
        eps: inputs are clamped to at least this, so ``x ** p`` and its gradient stay finite.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        if not p > 0 or not eps > 0:
            raise ConfigError(f"GeM needs p > 0 and eps > 0, got p={p}, eps={eps}")
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) non-negative maps (ReLU outputs) -> (B, C)."""
        p = self.p.to(x.dtype)
        return x.clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4g}, eps={self.eps:g}"


def create_pooling(name: str) -> nn.Module:
    """``"avg"`` -> GlobalAvgPool, ``"gem"`` -> GeM(p=3), ``"flatten"`` -> nn.Flatten (the
    (C, h, w) map as one C*h*w vector: where a part is stays known, which matters for small
    centred images such as Fashion-MNIST's); anything else is a one-line error."""
    if name == "avg":
        return GlobalAvgPool()
    if name == "gem":
        return GeM()
    if name == "flatten":
        return nn.Flatten()
    raise ConfigError(f"unknown pooling {name!r}; choose one of {', '.join(POOLINGS)}")

"""The per-triplet loss: hinge ``max(d_ap - d_an + m, 0)`` or soft-plus ``ln(1 + e^(d_ap - d_an))``.

Soft margin (Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss") replaces the
hinge and its margin by the smooth ``softplus``: it keeps pulling triplets that already
satisfy the margin, a little. With soft=True the margin is therefore not added; to get
PML's ``TripletMarginLoss(smooth_loss=True, margin=m)`` (softplus of the violation with
the margin) use soft=True with margin 0 there, or add m yourself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_SOFTPLUS_THRESHOLD = 20.0  # F.softplus default: linear above it


def violation(d_ap: torch.Tensor, d_an: torch.Tensor, margin: float, soft: bool) -> torch.Tensor:
    """How much each triplet breaks the ordering: d_ap - d_an (+ margin for the hinge).

    Args:
        d_ap, d_an: (...) anchor-positive and anchor-negative distances.
    """
    return d_ap - d_an if soft else d_ap - d_an + margin


def triplet_loss(x: torch.Tensor, soft: bool) -> torch.Tensor:
    """Per-triplet loss of the violation x: softplus(x) if soft else relu(x)."""
    return F.softplus(x, threshold=_SOFTPLUS_THRESHOLD) if soft else F.relu(x)


def triplet_loss_slope(x: torch.Tensor, soft: bool) -> torch.Tensor:
    """d loss / d x as autograd computes it, for the blockwise batch-all gradient.

    Soft-plus: sigmoid(x), and 1 above its threshold of 20 where softplus is linear.
    Hinge: 1[x > 0] (relu'(0) = 0).
    """
    if not soft:
        return (x > 0).to(x.dtype)
    return torch.where(x > _SOFTPLUS_THRESHOLD, 1.0, torch.sigmoid(x))

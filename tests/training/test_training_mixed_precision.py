"""--amp: bfloat16 autocast on a CPU with bfloat16 units, float32 (and a log line) without."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import lookalike.training.mixed_precision as mixed_precision
from lookalike.models.conv_fc import ConvFC
from lookalike.training.mixed_precision import autocast_context, autocast_dtype, describe_precision
from lookalike.training.optim import build_optimizer
from lookalike.training.trainer import train

from .conftest import tiny_config

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("units", [True, False])
def test_amp_on_the_cpu_is_bfloat16_only_where_the_cpu_has_the_units(
        monkeypatch: pytest.MonkeyPatch, units: bool) -> None:
    monkeypatch.setattr(mixed_precision, "cpu_has_bfloat16_units", lambda: units)
    assert autocast_dtype(CPU, enabled=True) == (torch.bfloat16 if units else None)
    assert autocast_dtype(CPU, enabled=False) is None
    assert autocast_dtype(CUDA, enabled=True) == torch.float16
    layer = torch.nn.Linear(4, 3)
    with autocast_context(CPU, enabled=True):
        out = layer(torch.randn(2, 4))
    assert out.dtype == (torch.bfloat16 if units else torch.float32)
    line = describe_precision(CPU, enabled=True)
    assert ("bfloat16 autocast" in line) == units and ("--amp ignored" in line) == (not units)


def test_a_cpu_run_with_amp_trains_in_bfloat16_and_says_so(
        tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mixed_precision, "cpu_has_bfloat16_units", lambda: True)
    seen: list[torch.dtype] = []
    original = torch.nn.Conv2d.forward

    def record(self: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        out = original(self, x)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Conv2d, "forward", record)
    lines: list[str] = []
    result = train(tiny_config(tiny_folder, amp=True, epochs=1), tmp_path / "run",
                   show_progress=False, log=lines.append)
    assert torch.bfloat16 in seen  # the training steps
    assert torch.float32 in seen  # validation embeds in float32
    assert any("bfloat16 autocast on cpu" in line for line in lines)
    assert all(r["train_loss"] == r["train_loss"] for r in result.records)  # no NaN


def test_the_optimiser_is_one_fused_adamw() -> None:
    model = ConvFC(hidden=16)
    optimizer = build_optimizer(model, tiny_config(Path("unused")))
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["fused"] is True


def test_conv_fc_in_channels_last_computes_the_plain_layout_network() -> None:
    torch.manual_seed(0)
    model = ConvFC(in_channels=1, input_size=28, widths=(4, 8), hidden=16).eval()
    x = torch.randn(3, 1, 28, 28)
    conv1, conv2, fc = model.features[0], model.features[3], model.fc[1]
    maps = F.max_pool2d(F.relu(F.conv2d(x, conv1.weight.contiguous(), conv1.bias, padding=2)), 2)
    maps = F.max_pool2d(F.relu(F.conv2d(maps, conv2.weight.contiguous(), conv2.bias,
                                        padding=2)), 2)
    expected = F.relu(F.linear(maps.contiguous().flatten(1), fc.weight, fc.bias))
    assert conv1.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)

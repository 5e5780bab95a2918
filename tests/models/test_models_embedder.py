"""Embedder, head, config and ``embed``: shapes, norms, conversions, order, modes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lookalike.errors import ConfigError, DataError
from lookalike.models import Embedder, EmbedderConfig, EmbeddingHead, build_embedder, embed


def test_head_normalises_and_projects() -> None:
    head = EmbeddingHead(10, 4)
    out = head(torch.randn(6, 10) * 50)
    assert out.shape == (6, 4)
    assert torch.allclose(out.norm(dim=1), torch.ones(6), atol=1e-6)
    raw = EmbeddingHead(10, 4, normalize=False, batchnorm=True)
    assert isinstance(raw.bn, torch.nn.BatchNorm1d) and raw.proj.bias is None
    assert not torch.allclose(raw(torch.randn(6, 10) * 50).norm(dim=1), torch.ones(6))


def test_embedder_output_is_unit_norm_with_configured_dim(tiny_model: Embedder) -> None:
    out = tiny_model(torch.rand(5, 1, 16, 16))
    assert out.shape == (5, 8) and tiny_model.embedding_dim == 8
    assert torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-6)


def test_config_round_trip_and_validation(tiny_config: Callable[..., EmbedderConfig]) -> None:
    config = tiny_config(mean=(0.2,), std=(0.4,))
    again = EmbedderConfig.from_dict(config.to_dict())
    assert again == config and again.mean == (0.2,)
    other = tiny_config(mean=(0.2,), std=(0.4,), embedding_dim=9)
    assert config.differences(other) == ["embedding_dim: 8 != 9"]
    with pytest.raises(ConfigError, match="unknown embedder config keys: colour"):
        EmbedderConfig.from_dict({**config.to_dict(), "colour": 1})
    with pytest.raises(ConfigError, match="std > 0"):
        EmbedderConfig(std=(0.0,))
    with pytest.raises(ConfigError, match="JSON values"):
        EmbedderConfig(backbone_options={"widths": object()})


def test_normalisation_uses_config_mean_std(tiny_config: Callable[..., EmbedderConfig]) -> None:
    model = build_embedder(tiny_config(mean=(0.25,), std=(0.5,)))
    x = torch.rand(2, 1, 16, 16)
    assert torch.allclose(model.preprocess(x), (x - 0.25) / 0.5)
    assert "mean" not in model.state_dict()  # the config is the one source of truth


def test_rgb_to_gray_uses_luma_and_sizes_are_resized(
        tiny_config: Callable[..., EmbedderConfig]) -> None:
    model = build_embedder(tiny_config(mean=(0.0,), std=(1.0,)))
    rgb = torch.rand(2, 3, 16, 16)
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    assert torch.allclose(model.preprocess(rgb)[:, 0], luma, atol=1e-6)
    big = torch.rand(2, 1, 32, 32)
    expected = F.interpolate(big, size=(16, 16), mode="bilinear", antialias=True)
    assert torch.allclose(model.preprocess(big), expected)
    with pytest.raises(DataError, match="cannot convert 2-channel"):
        model(torch.rand(1, 2, 16, 16))
    with pytest.raises(DataError, match=r"\(B, C, H, W\)"):
        model(torch.rand(16, 16))


def test_incompatible_channels_and_mean_length(tiny_config: Callable[..., EmbedderConfig]) -> None:
    with pytest.raises(ConfigError, match="mean/std need 1 or 1 values"):
        build_embedder(tiny_config(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    rgb_model = build_embedder(tiny_config(in_channels=3, mean=(0.1, 0.2, 0.3),
                                           std=(0.5, 0.5, 0.5)))
    assert rgb_model.model_channels == 3
    assert rgb_model(torch.rand(2, 3, 16, 16)).shape == (2, 8)


def test_build_is_seeded_and_leaves_global_rng_alone(
        tiny_config: Callable[..., EmbedderConfig]) -> None:
    before = torch.get_rng_state()
    a, b = build_embedder(tiny_config(), seed=3), build_embedder(tiny_config(), seed=3)
    c = build_embedder(tiny_config(), seed=4)
    assert torch.equal(torch.get_rng_state(), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["head.proj.weight"], sc["head.proj.weight"])


@pytest.mark.parametrize(("n", "batch_size"), [(10, 4), (8, 8), (3, 256), (1, 1)])
def test_embed_keeps_order_and_shape(tiny_model: Embedder, fake_dataset: Callable[..., object],
                                     n: int, batch_size: int) -> None:
    data = fake_dataset(n)
    out = embed(tiny_model, data, batch_size=batch_size, progress=False)
    assert out.dtype == np.float32 and out.shape == (n, 8) and out.flags["C_CONTIGUOUS"]
    tiny_model.eval()
    with torch.no_grad():
        expected = torch.stack([tiny_model(data.images[i:i + 1])[0] for i in range(n)])
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-5)
    assert torch.equal(torch.cat(data.calls), torch.arange(n))
    assert max(len(call) for call in data.calls) <= batch_size


@pytest.mark.parametrize("training", [True, False])
def test_embed_restores_mode_and_freezes_batchnorm(tiny_model: Embedder, training: bool,
                                                   fake_dataset: Callable[..., object]) -> None:
    tiny_model.train(training)
    stats = tiny_model.state_dict()["backbone.features.1.running_mean"].clone()
    embed(tiny_model, fake_dataset(6), batch_size=4, progress=False)
    assert tiny_model.training is training
    assert all(m.training is training for m in tiny_model.modules())
    assert torch.equal(tiny_model.state_dict()["backbone.features.1.running_mean"], stats)


def test_embed_restores_mode_after_an_error(tiny_model: Embedder) -> None:
    class Broken:
        def __len__(self) -> int:
            return 3

        def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, ...]:
            raise DataError("bad image")

    tiny_model.train()
    with pytest.raises(DataError):
        embed(tiny_model, Broken(), progress=False)
    assert tiny_model.training


def test_embed_empty_dataset(tiny_model: Embedder, fake_dataset: Callable[..., object]) -> None:
    out = embed(tiny_model, fake_dataset(0), progress=False)
    assert out.shape == (0, 8) and out.dtype == np.float32
    with pytest.raises(ConfigError, match="batch_size"):
        embed(tiny_model, fake_dataset(2), batch_size=0)


def test_mirror_average_embeds_an_image_and_its_mirror_alike_at_inference_only() -> None:
    """The oracle: the mean of the plain model's embeddings of the image and its mirror,
    renormalised. Training mode embeds the one view it is given."""
    plain = build_embedder(EmbedderConfig(backbone="vgg-fc", embedding_dim=16), seed=3).eval()
    mirrored = build_embedder(EmbedderConfig(backbone="vgg-fc", embedding_dim=16,
                                             mirror_average=True), seed=3).eval()
    mirrored.load_state_dict(plain.state_dict())
    images = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        one, other = plain(images), plain(images.flip(-1))
        expected = F.normalize(one + other, dim=1)
        got = mirrored(images)
        assert not torch.allclose(one, other, atol=1e-3)  # the plain model is not invariant
        assert torch.allclose(got, expected, atol=1e-6)
        assert torch.allclose(mirrored(images.flip(-1)), got, atol=1e-6)
        assert torch.allclose(mirrored.train()(images), plain.train()(images), atol=1e-6)


def test_mirror_average_keeps_older_fingerprints() -> None:
    """A checkpoint written before the field existed means False: hashed as before."""
    config = EmbedderConfig(backbone="vgg-fc")
    assert "mirror_average" not in config.fingerprint_fields()
    assert EmbedderConfig(backbone="vgg-fc", mirror_average=True).fingerprint_fields() \
        != config.fingerprint_fields()

import math

import pytest
import torch

import diffcore.nets as nets
from diffcore.nets import (
    GaussianFourierFeatures,
    SinusoidalEmbedding,
    TimestepEmbedder,
    timestep_embedding,
)


def test_all_names_import():
    for name in nets.__all__:
        assert hasattr(nets, name), name


def test_sinusoidal_values_and_shape():
    t = torch.tensor([0.0, 1.0, 2.5], dtype=torch.float64)
    emb = timestep_embedding(t, 6, max_period=100.0)
    assert emb.shape == (3, 6) and emb.dtype == torch.float64
    freqs = torch.tensor([100.0 ** (-k / 3) for k in range(3)], dtype=torch.float64)
    expected = torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], dim=-1)
    torch.testing.assert_close(emb, expected)
    # t = 0: cos = 1, sin = 0
    assert torch.equal(emb[0], torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0], dtype=torch.float64))


def test_sinusoidal_odd_dim_pads_and_float32_default():
    emb = timestep_embedding(torch.arange(4), 7)
    assert emb.shape == (4, 7) and emb.dtype == torch.float32
    assert torch.equal(emb[:, -1], torch.zeros(4))


def test_sinusoidal_module_scales_time():
    t = torch.rand(5, dtype=torch.float64)
    torch.testing.assert_close(
        SinusoidalEmbedding(8, scale=1000.0)(t), timestep_embedding(1000.0 * t, 8)
    )


@pytest.mark.parametrize("shape", [(), (2, 3)])
def test_sinusoidal_rejects_bad_shape(shape):
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        timestep_embedding(torch.zeros(shape), 8)


def test_fourier_features_seeded_and_bounded():
    a = GaussianFourierFeatures(16, scale=3.0, generator=torch.Generator().manual_seed(0))
    b = GaussianFourierFeatures(16, scale=3.0, generator=torch.Generator().manual_seed(0))
    c = GaussianFourierFeatures(16, scale=3.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.freqs, b.freqs) and not torch.equal(a.freqs, c.freqs)
    t = torch.linspace(-2, 2, 9)
    out = a(t)
    assert out.shape == (9, 16)
    # sin^2 + cos^2 = 1 per frequency
    torch.testing.assert_close(out[:, :8] ** 2 + out[:, 8:] ** 2, torch.ones(9, 8))
    torch.testing.assert_close(out[:, :8], torch.sin(2 * math.pi * t[:, None] * a.freqs))
    assert "freqs" in a.state_dict()


def test_fourier_odd_dim_rejected():
    with pytest.raises(ValueError, match="even"):
        GaussianFourierFeatures(5)


@pytest.mark.parametrize("kind", ["sinusoidal", "fourier"])
def test_timestep_embedder(kind):
    emb = TimestepEmbedder(32, freq_dim=16, kind=kind, generator=torch.Generator().manual_seed(0))
    assert emb(torch.rand(4)).shape == (4, 32)
    with pytest.raises(ValueError, match="kind"):
        TimestepEmbedder(32, freq_dim=16, kind="learned")  # type: ignore[arg-type]

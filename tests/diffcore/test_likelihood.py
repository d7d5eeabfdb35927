import pytest
import torch

from diffcore.likelihood import log_likelihood
from diffcore.processes import EDM, RectifiedFlow
from diffcore.testing import GaussianData


@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_gaussian_log_likelihood_matches_exact(divergence):
    data = GaussianData.create(torch.tensor([1.0, -2.0, 0.3]), torch.tensor([0.5, 1.5, 0.8]))
    x = data.sample(16, generator=torch.Generator().manual_seed(0))
    model = data.denoiser(RectifiedFlow(), "x0")
    out = log_likelihood(
        model, x, steps=60, divergence=divergence, generator=torch.Generator().manual_seed(1)
    )
    exact = data.log_prob(x)
    assert float(((out.log_prob - exact) / exact).abs().max()) < 0.01


def test_hutchinson_is_unbiased_on_mixture():
    data = GaussianData(
        weights=torch.tensor([0.5, 0.5], dtype=torch.float64),
        means=torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=torch.float64),
        stds=torch.tensor([[0.4, 0.6], [0.5, 0.3]], dtype=torch.float64),
    )
    x = data.sample(4, generator=torch.Generator().manual_seed(0))
    model = data.denoiser(EDM(sigma_max=40.0), "x0")
    exact = log_likelihood(model, x, steps=80, t_end=40.0).log_prob
    est = log_likelihood(
        model,
        x,
        steps=80,
        t_end=40.0,
        divergence="hutchinson",
        n_probes=16,
        generator=torch.Generator().manual_seed(0),
    ).log_prob
    assert float((est - exact).abs().max()) < 0.3
    assert float((exact - data.log_prob(x)).abs().max()) < 0.1  # RK4, 80 uniform steps in sigma

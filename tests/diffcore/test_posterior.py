"""Posterior sampling against the exact Gaussian posterior of a linear inverse problem."""

import pytest
import torch

from diffcore.guidance import PosteriorSampling
from diffcore.operators import MatrixOperator
from diffcore.processes import LinearVP
from diffcore.samplers import DPMSolverPP2M, append_zero, karras, sample
from diffcore.testing import GaussianData

D, M, SIGMA_Y = 4, 2, 0.3
PROCESS = LinearVP()


def problem():
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([0.5, -1.0, 0.0, 1.0], dtype=torch.float64)
    prior = GaussianData.create(mu, torch.ones(D, dtype=torch.float64))  # covariance I
    op = MatrixOperator.random(M, D, generator=g, dtype=torch.float64)
    x_true = prior.sample(1, generator=g)
    y = op.A(x_true) + SIGMA_Y * torch.randn(1, M, generator=g, dtype=torch.float64)
    a = op.matrix
    cov = torch.linalg.inv(torch.eye(D, dtype=torch.float64) + a.T @ a / SIGMA_Y**2)
    mean = cov @ (mu + a.T @ y[0] / SIGMA_Y**2)
    return prior, op, y, mean, cov


def posterior_samples(method, zeta=1.0, n=4000):
    prior, op, y, _, _ = problem()
    guided = PosteriorSampling(
        prior.denoiser(PROCESS, "eps"), op, y, SIGMA_Y, method=method, zeta=zeta
    )
    x = torch.randn(n, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grid = append_zero(karras(PROCESS, 40, t_end=1e-3))
    return sample(guided, x, grid, DPMSolverPP2M(), progress=False).x


def test_pigdm_is_exact_for_a_gaussian_prior():
    _, _, _, mean, cov = problem()
    xs = posterior_samples("pigdm")
    # 4000 samples: standard errors ~ 1/sqrt(4000) = 0.016 of the (<= 1) posterior stds
    assert float((xs.mean(0) - mean).abs().max()) < 0.06
    assert float((torch.cov(xs.T) - cov).abs().max()) < 0.08


def test_dps_moves_toward_the_posterior_mean():
    prior, _, _, mean, _ = problem()
    xs = posterior_samples("dps", zeta=1.0, n=1000)
    before = float((prior.means[0] - mean).norm())
    after = float((xs.mean(0) - mean).norm())
    assert after < 0.5 * before, (before, after)


def test_bad_method_is_named():
    prior, op, y, _, _ = problem()
    with pytest.raises(ValueError, match="unknown method 'ddrm'"):
        PosteriorSampling(prior.denoiser(PROCESS, "eps"), op, y, SIGMA_Y, method="ddrm")

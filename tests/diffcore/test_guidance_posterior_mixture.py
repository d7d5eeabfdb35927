"""Inverse problems with a Gaussian-mixture prior: the exact posterior is a Gaussian mixture.

DPS and RED-Diff are approximations; they must move the sample mean and the component weights
much closer to the exact posterior than the prior is. On a Gaussian prior RED-Diff, with the
weighting under which its fixed point is exact, recovers the exact posterior mean.
"""

import math

import pytest
import torch

from diffcore.guidance import PosteriorSampling, gaussian_weight, red_diff
from diffcore.operators import MatrixOperator
from diffcore.processes import LinearVP
from diffcore.samplers import DDPMAncestral, append_zero, karras, sample
from diffcore.testing import (
    FullGaussianMixture,
    GaussianData,
    GaussianMixtureData,
    linear_gaussian_posterior,
)

F64 = torch.float64
PROCESS = LinearVP()
SIGMA_Y = 0.3
PRIOR = GaussianMixtureData(
    weights=torch.tensor([0.5, 0.5], dtype=F64),
    means=torch.tensor([[-1.0, 0.5, 1.0], [1.0, -0.5, -0.5]], dtype=F64),
    stds=torch.tensor([[0.4, 0.6, 0.5], [0.5, 0.4, 0.6]], dtype=F64),
)
A = torch.tensor([[1.0, 0.5, 0.0]], dtype=F64)  # one measurement of three coordinates
Y = torch.tensor([0.2], dtype=F64)  # ambiguous: posterior weights about (0.29, 0.71)
POSTERIOR = linear_gaussian_posterior(PRIOR, A, Y, SIGMA_Y)
ONE, ZERO = torch.tensor(1.0, dtype=F64), torch.tensor(0.0, dtype=F64)


def errors(xs):
    """(|mean - exact mean|, max |weights - exact weights|), weights as mean responsibilities."""
    w = POSTERIOR.log_responsibilities(xs, ONE, ZERO).exp().mean(0)
    return float((xs.mean(0) - POSTERIOR.mean()).norm()), float((w - POSTERIOR.weights).abs().max())


def prior_errors():
    return errors(FullGaussianMixture.from_diagonal(PRIOR).sample(4000, generator=_g(0)))


def _g(seed):
    return torch.Generator().manual_seed(seed)


def test_posterior_helper_is_bayes_rule():
    # log post(x) - log prior(x) - log N(y; A x, s^2) must be the same constant for every x
    x = torch.randn(64, 3, generator=_g(0), dtype=F64) * 2
    lik = -0.5 * ((Y - x @ A.T) ** 2).sum(1) / SIGMA_Y**2 - math.log(
        SIGMA_Y * math.sqrt(2 * math.pi)
    )
    diff = POSTERIOR.log_prob(x) - PRIOR.log_prob(x) - lik
    assert float(diff.max() - diff.min()) < 1e-10
    # one component: the textbook Gaussian posterior
    g = GaussianData.create(torch.tensor([0.5, -1.0, 0.0]), torch.tensor([1.0, 0.5, 2.0]))
    post = linear_gaussian_posterior(g, A, Y, SIGMA_Y)
    prec = torch.diag(1 / g.stds[0] ** 2) + A.T @ A / SIGMA_Y**2
    cov = torch.linalg.inv(prec)
    torch.testing.assert_close(post.covs[0], cov)
    torch.testing.assert_close(
        post.means[0], cov @ (g.means[0] / g.stds[0] ** 2 + A.T @ Y / SIGMA_Y**2)
    )


def test_dps_approaches_the_mixture_posterior():
    n = 1000
    guided = PosteriorSampling(
        PRIOR.denoiser(PROCESS, "eps"),
        MatrixOperator(A),
        Y[None].expand(n, 1),
        SIGMA_Y,
        method="dps",
        zeta=1.0,
    )
    x = torch.randn(n, 3, generator=_g(1), dtype=F64)
    grid = append_zero(karras(PROCESS, 50, t_end=1e-3))
    xs = sample(guided, x, grid, DDPMAncestral(), generator=_g(2), progress=False).x
    (m0, w0), (m1, w1) = prior_errors(), errors(xs)
    print(f"\nDPS: mean error {m1:.3f} (prior {m0:.3f}), weight error {w1:.3f} (prior {w0:.3f})")
    assert m1 < 0.3 * m0 and w1 < 0.3 * w0


def test_red_diff_approaches_the_mixture_posterior():
    # The weighting exact for Gaussians of the components' variance (0.25) keeps the prior
    # score as t -> 0; the paper's sigma/alpha fades the prior out there and stops in between.
    n, (m0, w0) = 250, prior_errors()
    prior, op, y = PRIOR.denoiser(PROCESS, "eps"), MatrixOperator(A), Y[None].expand(n, 1)
    kw = dict(noise_std=SIGMA_Y, steps=200, generator=_g(3))
    m1, w1 = errors(red_diff(prior, op, y, lr=0.1, lam=1.0, weight=gaussian_weight(0.25), **kw))
    m2, w2 = errors(red_diff(prior, op, y, **kw))  # lam = 0.25, lr = 0.1, w = sigma / alpha
    print(
        f"\nRED-Diff: mean error {m1:.3f}, weight error {w1:.3f}; with the paper's weighting "
        f"{m2:.3f}, {w2:.3f} (prior {m0:.3f}, {w0:.3f})"
    )
    assert m1 < 0.3 * m0 and w1 < 0.3 * w0
    assert m2 < 0.9 * m0 and w2 < 0.9 * w0


def gaussian_problem():
    d, m = 4, 2
    g = _g(0)
    mean0 = torch.tensor([0.5, -1.0, 0.0, 1.0], dtype=F64)
    prior = GaussianData.create(mean0, torch.ones(d, dtype=F64))
    op = MatrixOperator.random(m, d, generator=g, dtype=F64)
    y = op.A(prior.sample(1, generator=g)) + SIGMA_Y * torch.randn(1, m, generator=g, dtype=F64)
    post = linear_gaussian_posterior(prior, op.matrix, y[0], SIGMA_Y)
    return prior, op, y, post.means[0]


def test_red_diff_fixed_point_is_the_gaussian_posterior_mean():
    prior, op, y, mean = gaussian_problem()
    n = 200
    times = torch.linspace(0.9, 0.2, 300, dtype=F64)  # exact at every t; skip the noisy ends
    est = red_diff(
        prior.denoiser(PROCESS, "eps"),
        op,
        y.expand(n, -1),
        noise_std=SIGMA_Y,
        lr=0.02,
        lam=1.0,
        weight=gaussian_weight(1.0),
        times=times,
        generator=_g(4),
    )
    err = float((est.mean(0) - mean).norm())
    spread = float((est - mean).norm(dim=1).pow(2).mean().sqrt())
    before = float((prior.means[0] - mean).norm())
    print(
        f"\nRED-Diff Gaussian: mean error {err:.4f} (prior {before:.3f}), per-run rms {spread:.3f}"
    )
    assert err < 0.04 and spread < 0.3


def test_red_diff_is_seeded_and_keeps_dtype():
    prior, op, y, _ = gaussian_problem()
    kw = dict(noise_std=SIGMA_Y, steps=5, generator=None)
    a = red_diff(prior.denoiser(PROCESS, "eps"), op, y, **{**kw, "generator": _g(5)})
    b = red_diff(prior.denoiser(PROCESS, "eps"), op, y, **{**kw, "generator": _g(5)})
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.dtype == F64 and a.shape == (1, 4)


def test_red_diff_bad_arguments_are_named():
    prior, op, y, _ = gaussian_problem()
    d = prior.denoiser(PROCESS, "eps")
    with pytest.raises(ValueError, match="noise_std"):
        red_diff(d, op, y, noise_std=0.0)
    with pytest.raises(ValueError, match="unknown weight 'snr'"):
        red_diff(d, op, y, noise_std=0.1, weight="snr")
    with pytest.raises(ValueError, match="decreasing"):
        red_diff(d, op, y, noise_std=0.1, times=torch.tensor([0.2, 0.5]))

"""Denoising MCMC (Langevin-Gibbs in (x, t), then an ODE solve) on exact Gaussian data."""

import pytest
import torch

from diffcore.processes import LinearVP
from diffcore.samplers import denoising_mcmc, time_score_from_log_density
from diffcore.testing import GaussianData

F64 = torch.float64
PROCESS = LinearVP()
MEAN, STD = torch.tensor([1.0, -0.5], dtype=F64), torch.tensor([0.5, 1.5], dtype=F64)
DATA = GaussianData.create(MEAN, STD)
TIME_SCORE = time_score_from_log_density(
    lambda x, t: DATA.log_prob_t(x, PROCESS.alpha(t), PROCESS.sigma(t))
)


def run(n=1000, **kw):
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    opts = dict(t_range=(0.2, 1.0), n_mcmc=100, step_x=0.05, step_t=1e-3, n_ode=8)
    return denoising_mcmc(
        DATA.denoiser(PROCESS, "eps"),
        x,
        time_score=TIME_SCORE,
        generator=torch.Generator().manual_seed(1),
        **{**opts, **kw},
    )


def test_samples_have_the_data_moments():
    out = run()
    n = out.x.shape[0]
    mean_err = (out.x.mean(0) - MEAN).abs()
    std_ratio = out.x.std(0) / STD
    print(f"\nDMCMC: mean error {mean_err.tolist()}, std ratio {std_ratio.tolist()}, nfe {out.nfe}")
    assert bool((mean_err < 4 * STD / n**0.5).all())  # 4 standard errors
    assert bool(((std_ratio - 1).abs() < 0.05).all())  # unadjusted Langevin: O(step) bias
    assert abs(float(torch.corrcoef(out.x.T)[0, 1])) < 0.1
    # the chain explored the time range, and its states are distributed as p_t given t
    assert float(out.t_chain.std()) > 0.1
    assert bool(((out.t_chain >= 0.2) & (out.t_chain <= 1.0)).all())
    a, s = PROCESS.alpha(out.t_chain)[:, None], PROCESS.sigma(out.t_chain)[:, None]
    z = (out.x_chain - a * MEAN) / torch.sqrt(a**2 * STD**2 + s**2)
    assert bool((z.mean(0).abs() < 0.15).all()) and bool(((z.std(0) - 1).abs() < 0.06).all())
    assert out.nfe == 100 + 8 + 1  # chain, solve, final denoising step


def test_seeded_and_dtype_preserved():
    a, b = run(n=16, n_mcmc=5), run(n=16, n_mcmc=5)
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=0)
    assert a.x.dtype == F64 and a.t_chain.shape == (16,)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="t_range"):
        run(n=4, t_range=(0.5, 1.5))
    with pytest.raises(ValueError, match="t_end"):
        run(n=4, t_range=(0.2, 1.0), t_end=0.3)

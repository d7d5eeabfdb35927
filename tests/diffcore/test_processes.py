import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffcore.processes import (
    EDM,
    PFGMPP,
    BrownianBridge,
    CosineVP,
    DiscreteVP,
    LinearInterpolant,
    LinearVP,
    RectifiedFlow,
    SubVP,
)
from diffcore.processes.gaussian import _derivative

from .conftest import GAUSSIAN_PROCESSES, interior_times


def test_lambda_inverse_round_trip(gaussian_process):
    t = interior_times(gaussian_process)
    back = gaussian_process.t_from_lambda(gaussian_process.lambda_(t))
    torch.testing.assert_close(back, t, atol=1e-9, rtol=0)


def test_closed_form_derivatives_match_autograd(gaussian_process):
    t = interior_times(gaussian_process)
    p = gaussian_process
    torch.testing.assert_close(p.d_alpha(t), _derivative(p.alpha, t), atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(p.d_sigma(t), _derivative(p.sigma, t), atol=1e-9, rtol=1e-7)


def test_lambda_decreases(gaussian_process):
    lam = gaussian_process.lambda_(interior_times(gaussian_process, 20))
    assert bool((lam[1:] < lam[:-1]).all())


def test_sde_reproduces_marginal_variance(gaussian_process):
    # d/dt Var = 2 f Var + g^2 for x_t = alpha x0 + sigma eps with Var(x0) = s^2.
    p, s2 = gaussian_process, 0.3
    t = interior_times(p)
    var = lambda tt: p.alpha(tt) ** 2 * s2 + p.sigma(tt) ** 2  # noqa: E731
    torch.testing.assert_close(
        _derivative(var, t), 2 * p.f(t) * var(t) + p.g2(t), rtol=1e-6, atol=1e-8
    )


@pytest.mark.parametrize("process", GAUSSIAN_PROCESSES, ids=lambda p: type(p).__name__)
@settings(max_examples=10, deadline=None)
@given(u=st.floats(0.05, 0.95), mean=st.floats(-3, 3), std=st.floats(0.1, 3), b=st.integers(1, 3))
def test_marginal_moments_match_closed_form(process, u, mean, std, b):
    g = torch.Generator().manual_seed(0)
    t = torch.tensor(process.t_min + u * (process.t_max - process.t_min), dtype=torch.float64)
    x0 = mean + std * torch.randn(20000, b, 2, generator=g, dtype=torch.float64)
    xt, _ = process.sample_marginal(x0, t, generator=g)
    a, s = process.alpha(t), process.sigma(t)
    exp_std = math.sqrt(float(a**2 * std**2 + s**2))
    assert float(xt.mean()) == pytest.approx(
        float(a) * mean, abs=4 * exp_std / math.sqrt(xt.numel()) * 3
    )
    assert float(xt.std()) == pytest.approx(exp_std, rel=0.03)


def test_vp_processes_preserve_variance():
    for p in (LinearVP(), CosineVP(), DiscreteVP.linear()):
        t = interior_times(p)
        torch.testing.assert_close(p.alpha(t) ** 2 + p.sigma(t) ** 2, torch.ones_like(t))


def test_subvp_variance_below_vp():
    t = interior_times(SubVP())
    assert bool((SubVP().sigma(t) < LinearVP().sigma(t)).all())


def test_discrete_table_matches_ddpm_at_knots():
    p = DiscreteVP.linear()
    n = torch.arange(0, 1000, 97)
    betas = torch.linspace(1e-4, 2e-2, 1000, dtype=torch.float64)
    ac = torch.cumprod(1 - betas, 0)
    torch.testing.assert_close(p.alpha(p.timestep_to_t(n)) ** 2, ac[n])


def test_discrete_table_validates_input():
    with pytest.raises(ValueError, match="strictly decreasing"):
        DiscreteVP(alphas_cumprod=torch.tensor([0.5, 0.9]))


def test_cosine_matches_nichol_dhariwal():
    p, s = CosineVP(), 0.008
    t = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)
    f = lambda tt: torch.cos((tt + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    torch.testing.assert_close(p.alpha(t) ** 2, f(t) / f(torch.zeros(1, dtype=torch.float64)))


def test_edm_time_is_sigma():
    t = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    torch.testing.assert_close(EDM().sigma(t), t)
    torch.testing.assert_close(EDM().t_from_lambda(-torch.log(t)), t)


def test_rectified_flow_velocity_is_eps_minus_x0():
    from diffcore.predictions import from_x0_eps

    x0, eps = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    v = from_x0_eps(x0, eps, torch.tensor(0.3, dtype=torch.float64), RectifiedFlow(), "velocity")
    torch.testing.assert_close(v, eps - x0)


def test_brownian_bridge_moments():
    bb = BrownianBridge()
    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(50000, 1, dtype=torch.float64)
    y = torch.ones(50000, 1, dtype=torch.float64)
    t = torch.tensor(0.3, dtype=torch.float64)
    xt, _ = bb.sample_marginal(x0, t, generator=g, x1=y)
    assert float(xt.mean()) == pytest.approx(0.3, abs=0.01)
    assert float(xt.var()) == pytest.approx(2 * (0.3 - 0.09), rel=0.03)
    # ends are exact
    torch.testing.assert_close(
        bb.interpolate(x0, y, torch.tensor(0.0, dtype=torch.float64), torch.randn_like(x0)), x0
    )


def test_interpolant_velocity_is_time_derivative():
    si = LinearInterpolant(eps=0.5)
    x0, x1, z = (torch.randn(5, 2, dtype=torch.float64) for _ in range(3))
    t, h = torch.tensor(0.4, dtype=torch.float64), 1e-6
    fd = (si.interpolate(x0, x1, t + h, z) - si.interpolate(x0, x1, t - h, z)) / (2 * h)
    torch.testing.assert_close(si.velocity_target(x0, x1, t, z), fd, atol=1e-6, rtol=1e-6)


def test_pfgmpp_radius_distribution():
    # E||x - y||^2 = r^2 N / (D - 2) with r = sigma sqrt(D)  (Xu et al. 2023, Beta-prime radius)
    n_dim, d, sigma = 6, 20.0, 0.7
    p = PFGMPP(D=d)
    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(40000, n_dim, dtype=torch.float64)
    xt, noise = p.sample_marginal(x0, torch.tensor(sigma), generator=g)
    expected = sigma**2 * d * n_dim / (d - 2)
    assert float(noise.pow(2).sum(1).mean()) == pytest.approx(expected, rel=0.03)


def test_pfgmpp_approaches_gaussian_for_large_d():
    p = PFGMPP(D=1e6)
    g = torch.Generator().manual_seed(0)
    _, noise = p.sample_marginal(
        torch.zeros(20000, 3, dtype=torch.float64), torch.tensor(2.0), generator=g
    )
    assert float(noise.std()) == pytest.approx(2.0, rel=0.02)


def test_time_outside_range_is_rejected():
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        LinearVP().check_time(torch.tensor(1.5))

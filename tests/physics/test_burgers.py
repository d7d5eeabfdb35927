import math

import pytest
import torch

from difflab.physics.solvers import SINE, burgers_cole_hopf

NU = 0.01 / math.pi


def _derivatives(x, t, nu):
    x = x.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    u = burgers_cole_hopf(x, t, nu=nu)
    u_t, u_x = torch.autograd.grad(u.sum(), (t, x), create_graph=True)
    (u_xx,) = torch.autograd.grad(u_x.sum(), x)
    return u.detach(), u_t.detach(), u_x.detach(), u_xx


@pytest.mark.parametrize("t_val", [0.02, 0.3, 1.6037 / math.pi, 1.0])
def test_cole_hopf_satisfies_burgers(t_val):
    x = torch.linspace(-1, 1, 257, dtype=torch.float64)
    t = torch.full_like(x, t_val)
    u, u_t, u_x, u_xx = _derivatives(x, t, NU)
    residual = u_t + u * u_x - NU * u_xx
    scale = u_t.abs().max() + (u * u_x).abs().max()
    assert residual.abs().max() < 1e-10 * scale


def test_cole_hopf_finite_differences_moderate_viscosity():
    # An autograd-free check: centred differences, O(h^2) truncation error.
    nu, h, k = 0.1, 2.5e-4, 1e-4
    x = torch.linspace(-0.9, 0.9, 37, dtype=torch.float64)
    t = torch.full_like(x, 0.4)
    f = lambda dx, dt: burgers_cole_hopf(x + dx, t + dt, nu=nu)  # noqa: E731
    u = f(0, 0)
    u_t = (f(0, k) - f(0, -k)) / (2 * k)
    u_x = (f(h, 0) - f(-h, 0)) / (2 * h)
    u_xx = (f(h, 0) - 2 * u + f(-h, 0)) / h**2
    assert (u_t + u * u_x - nu * u_xx).abs().max() < 1e-5


def test_cole_hopf_initial_condition():
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)
    assert torch.equal(burgers_cole_hopf(x, torch.zeros(())), SINE.u0(x))
    # continuity at t -> 0+: the quadrature reproduces u0 (error O(nu t) from the flow itself)
    u_small = burgers_cole_hopf(x, torch.full_like(x, 1e-6))
    assert torch.allclose(u_small, SINE.u0(x), atol=1e-5)


def test_cole_hopf_basdevant_benchmark():
    # Basdevant et al. 1986: max |u_x| = 152.00516 at x = 0, t = 1.6037 / pi for nu = 0.01/pi.
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    u = burgers_cole_hopf(x, torch.tensor([1.6037 / math.pi], dtype=torch.float64))
    (u_x,) = torch.autograd.grad(u.sum(), x)
    assert float(u_x) == pytest.approx(-152.00516, abs=1e-4)


def test_cole_hopf_symmetries_and_batching():
    x = torch.linspace(-1, 1, 33, dtype=torch.float64)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)[:, None]
    u = burgers_cole_hopf(x, t)
    assert u.shape == (3, 33)
    assert torch.allclose(burgers_cole_hopf(-x, t), -u, atol=1e-12)  # odd in x
    assert torch.allclose(burgers_cole_hopf(x + 2, t), u, atol=1e-12)  # period 2
    assert u.abs().max() <= 1 + 1e-12  # maximum principle


def test_cole_hopf_quadrature_converged():
    x = torch.linspace(-1, 1, 65, dtype=torch.float64)
    t = torch.full_like(x, 0.5)
    assert torch.allclose(burgers_cole_hopf(x, t), burgers_cole_hopf(x, t, n_quad=4001), atol=1e-12)


def test_cole_hopf_bad_inputs():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="nu"):
        burgers_cole_hopf(x, torch.ones(3), nu=0.0)
    with pytest.raises(ValueError, match="t"):
        burgers_cole_hopf(x, -torch.ones(3))

import math

import pytest
import torch

from difflab.physics.lpinn import Convection
from difflab.physics.solvers import convection_diffusion_fft, convection_exact, periodic_grid


@pytest.mark.parametrize("beta", [1.0, 30.0, 50.0])
def test_convection_exact_satisfies_pde(beta):
    x = (2 * math.pi * torch.rand(200, dtype=torch.float64)).requires_grad_(True)
    t = torch.rand(200, dtype=torch.float64).requires_grad_(True)
    u = convection_exact(x, t, beta)
    u_t, u_x = torch.autograd.grad(u.sum(), (t, x))
    assert (u_t + beta * u_x).abs().max() < 1e-12 * beta
    x0 = torch.linspace(0, 2 * math.pi, 50, dtype=torch.float64)
    assert torch.equal(convection_exact(x0, torch.zeros(()), beta), torch.sin(x0))
    tt = torch.tensor(0.37, dtype=torch.float64)
    assert torch.allclose(
        convection_exact(x0, tt, beta), convection_exact(x0 + 2 * math.pi, tt, beta)
    )


def test_fft_matches_fourier_decay():
    n, beta, nu, length = 64, 30.0, 0.05, 2 * math.pi
    x = periodic_grid(n, 0.0, length, dtype=torch.float64)
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    modes = [(1, 1.0, 0.0), (3, 0.5, 0.2), (7, -0.25, 1.3)]  # (k, amplitude, phase)
    u0 = sum(a * torch.sin(k * x + p) for k, a, p in modes)
    u0_batch = torch.stack([u0, 2 * u0])
    u = convection_diffusion_fft(u0_batch, t, beta=beta, nu=nu, length=length)
    assert u.shape == (2, 5, n)
    tt = t[:, None]
    exact = sum(
        a * torch.exp(-nu * k**2 * tt) * torch.sin(k * (x - beta * tt) + p) for k, a, p in modes
    )
    assert torch.allclose(u[0], exact, atol=1e-12)
    assert torch.allclose(u[1], 2 * exact, atol=1e-12)


def test_fft_pure_convection_and_problem():
    p = Convection(beta=50.0, nu=0.01)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    x, _ = p.grid(128, 11)
    assert torch.allclose(p.exact_fft(128, t), p.exact(x[None], t[:, None]), atol=1e-12)
    u = convection_diffusion_fft(torch.sin(x), t, beta=50.0, nu=0.0)
    assert torch.allclose(u, convection_exact(x[None], t[:, None], 50.0), atol=1e-12)


def test_fft_bad_inputs():
    with pytest.raises(ValueError, match="nu"):
        convection_diffusion_fft(torch.zeros(8), torch.ones(1), beta=1.0, nu=-1.0)
    with pytest.raises(ValueError, match="u0"):
        convection_diffusion_fft(torch.zeros(2, 2, 8), torch.ones(1), beta=1.0, nu=0.0)
    with pytest.raises(ValueError, match="t"):
        convection_diffusion_fft(torch.zeros(8), -torch.ones(1), beta=1.0, nu=0.1)

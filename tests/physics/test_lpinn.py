import math

import pytest
import torch
from torch import nn

from difflab.physics.lpinn import (
    Burgers,
    Convection,
    EulerianPINN,
    LagrangianPINN,
    LossWeights,
    LPINNConfig,
    eulerian_residuals,
    evaluate_lpinn,
    get_config,
    lagrangian_loss,
    lagrangian_residuals,
    make_problem,
    sample_collocation,
    train_lpinn,
    train_pinn,
)

F64 = torch.float64


def _points(problem, n=200, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return sample_collocation(problem, n, 32, 16, generator=gen, dtype=F64)


def _relabel(s):
    # a smooth, monotone relabelling of particles with periodic displacement: x_xi != 1
    return s + 0.3 * torch.sin(s)


@pytest.mark.parametrize("beta", [1.0, 30.0, 50.0])
def test_lagrangian_residual_of_exact_convection_pair_is_zero(beta):
    problem = Convection(beta=beta)

    def exact(xi, t):
        return xi + beta * t, torch.sin(xi)

    pts = _points(problem)
    r = lagrangian_residuals(exact, problem, pts.x, pts.t, pts.x0)
    for name in ("characteristic", "solution", "initial_path", "initial_state"):
        assert getattr(r, name).abs().max() < 1e-12 * beta, name
    loss, terms = lagrangian_loss(exact, problem, pts)
    assert float(loss) < 1e-20


def test_lagrangian_residual_with_diffusion_uses_chain_rule():
    # u_t + beta u_x = nu u_xx with u0 = sin: x = g(s) + beta t, u = exp(-nu t) sin(g(s)) is an
    # exact Lagrangian pair for any relabelling g of the initial positions (here x_xi != 1).
    beta, nu = 10.0, 0.3
    problem = Convection(beta=beta, nu=nu)

    def exact(s, t):
        return _relabel(s) + beta * t, torch.exp(-nu * t) * torch.sin(_relabel(s))

    pts = _points(problem)
    r = lagrangian_residuals(exact, problem, pts.x, pts.t, pts.x0)
    assert r.characteristic.abs().max() < 1e-12
    assert r.solution.abs().max() < 1e-12
    # the relabelled pair does not start at x = xi: the initial conditions notice
    assert r.initial_path.abs().max() > 0.1 and r.initial_state.abs().max() > 0.1
    # a wrong diffusivity is caught by the solution residual
    wrong = Convection(beta=beta, nu=2 * nu)
    assert lagrangian_residuals(exact, wrong, pts.x, pts.t, pts.x0).solution.abs().max() > 0.1


def test_polynomial_residual_is_the_chain_residual_times_jacobian_cubed():
    # Any smooth field with x_xi > 0: the division-free form equals x_xi^3 times the chain-rule
    # form, so both vanish on the same (invertible) solutions.
    problem = Convection(beta=3.0, nu=0.2)

    def field(s, t):
        return _relabel(s) + 0.4 * t * torch.cos(s), torch.sin(2 * s) * torch.exp(-t) + t * s

    pts = _points(problem)
    chain = lagrangian_residuals(field, problem, pts.x, pts.t, pts.x0).solution
    poly = lagrangian_residuals(field, problem, pts.x, pts.t, pts.x0, form="polynomial").solution
    x_xi = 1 + 0.3 * torch.cos(pts.x) - 0.4 * pts.t * torch.sin(pts.x)
    assert x_xi.min() > 0.2 and chain.abs().max() > 0.1
    torch.testing.assert_close(poly, x_xi**3 * chain, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="`form` must be"):
        lagrangian_residuals(field, problem, pts.x, pts.t, pts.x0, form="quotient")


def test_fold_penalty_sees_crossing_particles_only():
    problem = Convection(beta=1.0, nu=0.1)
    pts = _points(problem)

    def folded(s, t):  # x_xi = 1 - 2 t cos(s) < 0 where 2 t cos(s) > 1
        return s - 2 * t * torch.sin(s), torch.sin(s)

    def unfolded(s, t):
        return _relabel(s) + t, torch.sin(s)

    w = LossWeights(monotone=1.0)
    _, terms = lagrangian_loss(folded, problem, pts, w, form="polynomial")
    r = lagrangian_residuals(folded, problem, pts.x, pts.t, pts.x0)
    expected = torch.relu(-(1 - 2 * pts.t * torch.cos(pts.x))).square().mean()
    assert terms["monotone"] == pytest.approx(float(expected), rel=1e-9) and expected > 0
    torch.testing.assert_close(r.jacobian, 1 - 2 * pts.t * torch.cos(pts.x))
    assert lagrangian_loss(unfolded, problem, pts, w)[1]["monotone"] == 0.0
    assert "monotone" not in lagrangian_loss(folded, problem, pts)[1]  # weight 0: not computed


def test_lagrangian_residual_inviscid_burgers_before_shock():
    # nu = 0: particles move in straight lines x = xi + u0(xi) t until they cross (t < 1/pi).
    problem = Burgers(nu=0.0)
    pts = _points(problem)
    t = 0.3 * pts.t  # t < 0.3 < 1/pi

    def exact(xi, t):
        return xi + problem.u0(xi) * t, problem.u0(xi)

    r = lagrangian_residuals(exact, problem, pts.x, t, pts.x0)
    assert r.characteristic.abs().max() < 1e-12 and r.solution.abs().max() < 1e-12


def test_eulerian_residual_of_exact_solution_is_zero():
    problem = Convection(beta=30.0, nu=0.05)
    pts = _points(problem)
    r = eulerian_residuals(problem.exact, problem, pts.x, pts.t, pts.x0, pts.tb)
    assert r.pde.abs().max() < 1e-10
    assert r.initial.abs().max() < 1e-12 and r.periodic.abs().max() < 1e-12
    bad = eulerian_residuals(
        problem.exact, Convection(beta=29.0, nu=0.05), pts.x, pts.t, pts.x0, pts.tb
    )
    assert bad.pde.abs().max() > 0.1


def test_lagrangian_pinn_is_periodic_in_the_label():
    model = LagrangianPINN(0.0, 2 * math.pi, speed_scale=30.0, hidden=16, depth=2).double()
    xi = torch.rand(20, dtype=F64) * 2 * math.pi
    t = torch.rand(20, dtype=F64)
    x1, u1 = model(xi, t)
    x2, u2 = model(xi + 2 * math.pi, t)
    assert torch.allclose(u1, u2, atol=1e-12) and torch.allclose(
        x2 - x1, torch.full_like(x1, 2 * math.pi)
    )
    assert EulerianPINN(0.0, 2 * math.pi, hidden=8, depth=1)(xi.float(), t.float()).shape == (20,)


class _Oracle(nn.Module):
    def __init__(self, beta):
        super().__init__()
        self.beta = beta
        self.dummy = nn.Parameter(torch.zeros((), dtype=F64))

    def forward(self, xi, t):
        return _relabel(xi) + self.beta * t, torch.sin(_relabel(xi))


def test_evaluate_lpinn_with_exact_particles():
    # Exact particles, non-uniform in x: only the periodic interpolation error remains.
    problem = Convection(beta=50.0)
    ev = evaluate_lpinn(_Oracle(50.0), problem, n_x=128, n_t=11)
    assert ev.u.shape == ev.u_exact.shape == (11, 128)
    assert ev.rel_l2 < 1e-3
    assert ev.extra["rel_l2_particles"] < 1e-12


def test_tiny_training_reduces_loss():
    config = get_config("convection", quick=True, beta=10.0, adam_steps=40, lbfgs_steps=20)
    for train in (train_lpinn, train_pinn):
        result = train(config, progress=False)
        assert all(math.isfinite(v) for v in result.history)
        assert result.history[-1] < 0.8 * result.history[0], train.__name__


def test_tiny_burgers_training_runs():
    config = get_config("burgers", quick=True, adam_steps=10, lbfgs_steps=5)
    result = train_lpinn(config, progress=False)
    assert math.isfinite(result.history[-1]) and result.history[-1] < result.history[0]


def test_training_is_seeded():
    config = get_config("convection", quick=True, adam_steps=5, lbfgs_steps=0)
    a = train_lpinn(config, progress=False).history
    b = train_lpinn(config, progress=False).history
    assert a == b


def test_config_errors():
    with pytest.raises(ValueError, match="equation"):
        LPINNConfig(equation="heat")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown equation"):
        make_problem("heat")
    with pytest.raises(ValueError, match="unknown preset"):
        get_config("heat")
    with pytest.raises(ValueError, match="xi"):
        lagrangian_residuals(
            lambda a, b: (a, b), Convection(), torch.zeros(3), torch.zeros(4), torch.zeros(2)
        )


@pytest.mark.slow
@pytest.mark.parametrize("beta", [30.0, 50.0])
def test_lpinn_beats_pinn_on_convection_failure_mode(beta):
    # Krishnapriyan et al. 2021: the Eulerian PINN fails for large beta; the LPINN does not.
    # Budget: 500 Adam + 500 L-BFGS iterations, 2000 collocation points, 4 x 50 tanh layers.
    from difflab.physics.lpinn import compare

    config = get_config("convection", beta=beta, adam_steps=500, lbfgs_steps=500)
    result = compare(config, progress=False)
    print(f"beta={beta:g}: LPINN rel. L2 {result.lpinn.rel_l2:.3e}, PINN {result.pinn.rel_l2:.3e}")
    assert result.lpinn.rel_l2 < 0.05
    assert result.pinn.rel_l2 > 0.5


def test_sweep_beta_and_public_names():
    import difflab.physics.lpinn as lpinn
    from difflab.physics.lpinn import sweep_beta

    for name in lpinn.__all__:
        assert hasattr(lpinn, name), name
    res = sweep_beta([1.0, 10.0], quick=True, progress=False, adam_steps=3, lbfgs_steps=0)
    assert sorted(res) == [1.0, 10.0]
    assert res[10.0].config.beta == 10.0 and res[10.0].metrics()["lpinn"]["rel_l2"] > 0

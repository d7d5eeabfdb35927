"""Residuals and losses of the Lagrangian PINN and of the Eulerian PINN baseline.

LPINN (Mojgani, Balajewicz & Hassanzadeh 2022, arXiv:2205.02902, sec. 4), for a particle with
label ``xi`` on path ``x(xi, t)`` carrying ``u(xi, t)``:

- characteristic residual ``r_x = dx/dt - a(u)`` (``a = beta`` for convection, ``a = u`` for
  Burgers);
- solution residual ``r_u = du/dt - nu u_xx`` (``du/dt = 0`` without diffusion). The Eulerian
  derivatives follow from the chain rule through the path: ``u_x = u_xi / x_xi`` and
  ``u_xx = (u_x)_xi / x_xi = (x_xi u_xixi - u_xi x_xixi) / x_xi^3``. ``form="chain"`` uses
  this quotient; ``form="polynomial"`` multiplies the residual by ``x_xi^3``,
  ``x_xi^3 du/dt - nu (x_xi u_xixi - u_xi x_xixi)``, which has the same zeros wherever the
  map is invertible (``x_xi > 0``) and no division, so it stays bounded where particles
  crowd into a shock and ``x_xi -> 0`` (our choice; the paper writes the quotient form);
- initial conditions ``x(xi, 0) = xi`` and ``u(xi, 0) = u0(xi)``;
- periodicity is exact through the embedding of ``xi`` (no loss term).

Eulerian PINN (Raissi et al. 2019; Krishnapriyan et al. 2021, arXiv:2109.01050, eq. 2):
``r = u_t + a(u) u_x - nu u_xx`` on collocation points, ``u(x, 0) = u0(x)``, and the periodic
condition ``u(x_min, t) = u(x_min + L, t)`` (also for ``u_x`` when ``nu > 0``).

Each loss is the weighted sum of the mean squares of its residuals. The weights default to 1,
the setting of Krishnapriyan et al. for the convection benchmark (their ``lambda = 1``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .problems import Problem

__all__ = [
    "CollocationPoints",
    "EulerianResiduals",
    "LagrangianResiduals",
    "LossWeights",
    "ResidualForm",
    "eulerian_loss",
    "eulerian_residuals",
    "lagrangian_loss",
    "lagrangian_residuals",
    "sample_collocation",
]

_MIN_JACOBIAN = 1e-3  # floor of dx/dxi in the Lagrangian chain rule (numerical guard)

ResidualForm = Literal["chain", "polynomial"]
LagrangianField = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
EulerianField = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True, kw_only=True)
class LossWeights:
    """Weights of the loss terms (mean squares); all 1 by default."""

    residual: float = 1.0  # PDE residual (Eulerian) or solution residual du/dt (Lagrangian)
    characteristic: float = 1.0  # dx/dt - a(u) (Lagrangian only)
    initial: float = 1.0  # u(., 0) = u0 (and x(xi, 0) = xi for LPINN)
    boundary: float = 1.0  # periodicity (Eulerian only; exact for LPINN)
    monotone: float = 0.0  # LPINN only: mean relu(-x_xi)^2, particles may not cross


@dataclass(frozen=True)
class CollocationPoints:
    """Training points, fixed for a run (so L-BFGS sees a deterministic objective).

    Attributes:
        x: (N,) interior positions (Lagrangian labels ``xi`` for LPINN).
        t: (N,) interior times.
        x0: (M,) positions of the initial condition.
        tb: (B,) times of the periodic boundary condition.
    """

    x: Tensor
    t: Tensor
    x0: Tensor
    tb: Tensor


def sample_collocation(
    problem: Problem,
    n_residual: int,
    n_initial: int,
    n_boundary: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> CollocationPoints:
    """Uniform random interior points; equispaced initial points and boundary times."""
    for name, n in (("n_residual", n_residual), ("n_initial", n_initial)):
        if n < 1:
            raise ValueError(f"`{name}` must be >= 1, got {n}.")
    u = torch.rand(2, n_residual, generator=generator, dtype=dtype).to(device)
    x = problem.x_min + problem.length * u[0]
    t = problem.t_max * u[1]
    x0 = problem.x_min + problem.length / n_initial * torch.arange(n_initial, dtype=dtype)
    tb = torch.linspace(0.0, problem.t_max, max(n_boundary, 1), dtype=dtype)
    return CollocationPoints(x=x, t=t, x0=x0.to(device), tb=tb.to(device))


def _grad(y: Tensor, x: Tensor) -> Tensor:
    """d(y_i)/d(x_i) for pointwise fields; zero when ``y`` does not depend on ``x``."""
    if not y.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(
        y.sum(), x, create_graph=True, allow_unused=True, materialize_grads=True
    )
    return g


@dataclass(frozen=True)
class LagrangianResiduals:
    """LPINN residuals.

    Attributes:
        characteristic: (N,) ``dx/dt - a(u)``.
        solution: (N,) ``du/dt - nu u_xx``.
        initial_path: (M,) ``x(xi, 0) - xi``.
        initial_state: (M,) ``u(xi, 0) - u0(xi)``.
        jacobian: (N,) ``x_xi`` at the interior points (None when ``nu == 0``).
    """

    characteristic: Tensor
    solution: Tensor
    initial_path: Tensor
    initial_state: Tensor
    jacobian: Tensor | None = None


def lagrangian_residuals(
    field: LagrangianField,
    problem: Problem,
    xi: Tensor,
    t: Tensor,
    xi0: Tensor,
    *,
    form: ResidualForm = "chain",
    min_jacobian: float = _MIN_JACOBIAN,
) -> LagrangianResiduals:
    """Residuals of a Lagrangian field ``(xi, t) -> (x, u)`` (e.g. `LagrangianPINN`).

    Args:
        field: maps labels ``xi`` (N,) and times ``t`` (N,) to path ``x`` and state ``u``.
        problem: the PDE (speed ``a(u)``, diffusivity, initial condition).
        xi: (N,) labels of the interior points.
        t: (N,) their times.
        xi0: (M,) labels where the initial condition is imposed.
        form: ``"chain"`` (``du/dt - nu u_xx`` with ``u_xx`` by the chain rule) or
            ``"polynomial"`` (that residual times ``x_xi^3``, division-free); only matters if
            ``nu > 0``.
        min_jacobian: floor of ``x_xi`` in the chain rule (a numerical guard: a folded map,
            ``x_xi <= 0``, is unphysical and makes ``u_xx`` singular). ``"chain"`` only.

    Returns:
        The four residual vectors (graph kept, so they can be backpropagated).
    """
    if xi.shape != t.shape or xi.ndim != 1:
        raise ValueError(f"`xi` and `t` must be (N,), got {tuple(xi.shape)}, {tuple(t.shape)}.")
    if form not in ("chain", "polynomial"):
        raise ValueError(f"`form` must be 'chain' or 'polynomial', got {form!r}.")
    xi = xi.detach().requires_grad_(problem.nu > 0)
    t = t.detach().requires_grad_(True)
    x, u = field(xi, t)
    r_x = _grad(x, t) - problem.velocity(u)
    r_u = _grad(u, t)
    x_xi = _grad(x, xi) if problem.nu > 0 else None
    if x_xi is not None and form == "chain":
        safe = x_xi.clamp_min(min_jacobian)
        u_x = _grad(u, xi) / safe
        u_xx = _grad(u_x, xi) / safe
        r_u = r_u - problem.nu * u_xx
    elif x_xi is not None:
        u_xi = _grad(u, xi)
        r_u = x_xi**3 * r_u - problem.nu * (x_xi * _grad(u_xi, xi) - u_xi * _grad(x_xi, xi))
    x_init, u_init = field(xi0, torch.zeros_like(xi0))
    return LagrangianResiduals(
        characteristic=r_x,
        solution=r_u,
        initial_path=x_init - xi0,
        initial_state=u_init - problem.u0(xi0),
        jacobian=x_xi,
    )


def lagrangian_loss(
    field: LagrangianField,
    problem: Problem,
    points: CollocationPoints,
    weights: LossWeights = LossWeights(),  # noqa: B008 (frozen, immutable default)
    *,
    form: ResidualForm = "chain",
) -> tuple[Tensor, dict[str, float]]:
    """Weighted LPINN loss and its terms (as floats, for logging)."""
    r = lagrangian_residuals(field, problem, points.x, points.t, points.x0, form=form)
    terms = {
        "characteristic": r.characteristic.square().mean(),
        "solution": r.solution.square().mean(),
        "initial": r.initial_state.square().mean() + r.initial_path.square().mean(),
    }
    total = (
        weights.characteristic * terms["characteristic"]
        + weights.residual * terms["solution"]
        + weights.initial * terms["initial"]
    )
    if weights.monotone and r.jacobian is not None:
        terms["monotone"] = torch.relu(-r.jacobian).square().mean()
        total = total + weights.monotone * terms["monotone"]
    return total, {k: float(v.detach()) for k, v in terms.items()}


@dataclass(frozen=True)
class EulerianResiduals:
    """PINN residuals: ``pde`` (N,), ``initial`` (M,), ``periodic`` (B,) or (2B,)."""

    pde: Tensor
    initial: Tensor
    periodic: Tensor


def eulerian_residuals(
    field: EulerianField, problem: Problem, x: Tensor, t: Tensor, x0: Tensor, tb: Tensor
) -> EulerianResiduals:
    """Residuals of an Eulerian field ``(x, t) -> u`` (e.g. `EulerianPINN`).

    Args:
        field: maps positions (N,) and times (N,) to ``u`` (N,).
        problem: the PDE.
        x: (N,) interior positions.
        t: (N,) interior times.
        x0: (M,) positions of the initial condition.
        tb: (B,) times of the periodic boundary condition.
    """
    if x.shape != t.shape or x.ndim != 1:
        raise ValueError(f"`x` and `t` must be (N,), got {tuple(x.shape)}, {tuple(t.shape)}.")
    x = x.detach().requires_grad_(True)
    t = t.detach().requires_grad_(True)
    u = field(x, t)
    u_x = _grad(u, x)
    r = _grad(u, t) + problem.velocity(u) * u_x
    if problem.nu > 0:
        r = r - problem.nu * _grad(u_x, x)
    u_init = field(x0, torch.zeros_like(x0))
    xb = torch.cat(
        [torch.full_like(tb, problem.x_min), torch.full_like(tb, problem.x_min + problem.length)]
    )
    xb = xb.requires_grad_(problem.nu > 0)
    ub = field(xb, torch.cat([tb, tb]))
    nb = tb.numel()
    periodic = ub[:nb] - ub[nb:]
    if problem.nu > 0:
        ub_x = _grad(ub, xb)
        periodic = torch.cat([periodic, ub_x[:nb] - ub_x[nb:]])
    return EulerianResiduals(pde=r, initial=u_init - problem.u0(x0), periodic=periodic)


def eulerian_loss(
    field: EulerianField,
    problem: Problem,
    points: CollocationPoints,
    weights: LossWeights = LossWeights(),  # noqa: B008 (frozen, immutable default)
) -> tuple[Tensor, dict[str, float]]:
    """Weighted PINN loss and its terms (as floats, for logging)."""
    r = eulerian_residuals(field, problem, points.x, points.t, points.x0, points.tb)
    terms = {
        "pde": r.pde.square().mean(),
        "initial": r.initial.square().mean(),
        "boundary": r.periodic.square().mean(),
    }
    total = (
        weights.residual * terms["pde"]
        + weights.initial * terms["initial"]
        + weights.boundary * terms["boundary"]
    )
    return total, {k: float(v.detach()) for k, v in terms.items()}

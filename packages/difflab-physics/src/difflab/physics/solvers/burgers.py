"""Viscous Burgers equation solved exactly by the Cole-Hopf transform.

``u_t + u u_x = nu u_xx``. With ``u = -2 nu phi_x / phi`` the equation becomes the heat
equation ``phi_t = nu phi_xx`` (Hopf 1950; Cole 1951), whose solution on the real line is a
Gaussian convolution of ``phi(x, 0) = exp(-Phi(x) / (2 nu))``, ``Phi(x) = int_0^x u0``. After the
substitution ``y = x - sigma eta``, ``sigma = sqrt(4 nu t)``::

    u(x, t) = (sigma / t) * E[eta],   density of eta  ~  exp(-eta^2 - Phi(x - sigma eta) / (2 nu))

(Basdevant et al. 1986, "Spectral and finite difference solutions of the Burgers equation",
eq. 3, for ``u0 = -sin(pi x)``). Gauss-Hermite quadrature treats ``exp(-Phi / (2 nu))`` as a
smooth factor, which it is not for small ``nu`` (``nu = 0.01/pi`` gives ``exp(50 (1 - cos))``,
growing faster than the Gaussian decays near the shock). We therefore use the trapezoidal
rule in ``eta`` on a window sized from the oscillation of ``Phi`` and sum in log space; for an
analytic, rapidly decaying integrand the trapezoidal rule converges geometrically, and the
window ``|eta| <= sqrt(osc(Phi) / (2 nu) + 40)`` drops mass below ``e^-40`` of the peak.
The result is differentiable (autograd) in ``x`` and ``t``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SINE", "BurgersInitialCondition", "burgers_cole_hopf"]

_TAIL = 40.0  # log-mass margin of the quadrature window, exp(-40) ~ 4e-18
_CHUNK = 4096  # points per quadrature chunk (memory: chunk * n_quad values)


@dataclass(frozen=True)
class BurgersInitialCondition:
    """An initial condition for `burgers_cole_hopf`.

    Attributes:
        u0: the initial velocity ``u0(x)``.
        potential: ``Phi(x) = int_0^x u0(s) ds`` (its derivative must be ``u0``).
        oscillation: an upper bound of ``max Phi - min Phi`` over the real line.
    """

    u0: Callable[[Tensor], Tensor]
    potential: Callable[[Tensor], Tensor]
    oscillation: float


def _neg_sin_pi(x: Tensor) -> Tensor:
    return -torch.sin(math.pi * x)


def _neg_sin_pi_potential(x: Tensor) -> Tensor:
    return (torch.cos(math.pi * x) - 1.0) / math.pi


SINE = BurgersInitialCondition(
    u0=_neg_sin_pi, potential=_neg_sin_pi_potential, oscillation=2 / math.pi
)
"""``u0 = -sin(pi x)`` on ``[-1, 1]`` (Raissi et al. 2019, sec. 3.1; periodic with period 2)."""


def burgers_cole_hopf(
    x: Tensor,
    t: Tensor,
    *,
    nu: float = 0.01 / math.pi,
    initial: BurgersInitialCondition = SINE,
    n_quad: int = 1201,
) -> Tensor:
    """Exact viscous Burgers solution ``u(x, t)`` by Cole-Hopf and log-space quadrature.

    Args:
        x: positions, any shape broadcastable with ``t``.
        t: times ``>= 0``, broadcastable with ``x``; at ``t == 0`` the result is ``u0(x)``.
        nu: viscosity, ``> 0`` (default ``0.01 / pi``, Raissi et al. 2019).
        initial: the initial condition with its potential (default `SINE`).
        n_quad: trapezoidal nodes in ``eta``. The default resolves ``nu = 0.01/pi`` for
            ``t <= 1`` to about float64 round-off.

    Returns:
        u: the broadcast shape of ``x`` and ``t``, dtype of the promoted inputs.

    >>> u = burgers_cole_hopf(torch.tensor([0.5], dtype=torch.float64), torch.tensor([0.0]))
    >>> round(float(u), 6)
    -1.0
    """
    if not nu > 0:
        raise ValueError(f"`nu` must be > 0 for Cole-Hopf, got {nu}; use a shock solver for nu=0.")
    if n_quad < 3:
        raise ValueError(f"`n_quad` must be >= 3, got {n_quad}.")
    x, t = torch.broadcast_tensors(torch.as_tensor(x), torch.as_tensor(t))
    if not torch.is_floating_point(x):
        x = x.to(torch.get_default_dtype())
    dtype = torch.promote_types(x.dtype, t.dtype)
    x, t = x.to(dtype), t.to(dtype)
    if bool((t < 0).any()):
        raise ValueError("`t` must be >= 0 (Burgers with viscosity is not time-reversible).")
    shape = x.shape
    xf, tf = x.reshape(-1), t.reshape(-1)
    half = math.sqrt(initial.oscillation / (2 * nu) + _TAIL)
    eta = torch.linspace(-half, half, n_quad, dtype=dtype, device=x.device)
    positive = tf > 0
    t_safe = torch.where(positive, tf, torch.ones_like(tf))
    out = []
    for start in range(0, xf.numel(), _CHUNK):
        xs, ts = xf[start : start + _CHUNK, None], t_safe[start : start + _CHUNK, None]
        sigma = torch.sqrt(4 * nu * ts)
        log_w = -(eta**2) - initial.potential(xs - sigma * eta) / (2 * nu)
        w = torch.softmax(log_w, dim=-1)  # trapezoid weights cancel in the ratio (ends ~ 0)
        out.append(sigma[:, 0] / ts[:, 0] * (w * eta).sum(-1))
    u = torch.cat(out) if out else xf.clone()
    u = torch.where(positive, u, initial.u0(xf))
    return u.reshape(shape)

"""Probability-flow ODE step rules in t, driven by the velocity dx/dt.

Each rule reads ``model(x, t).velocity``, so it works for any process and prediction kind
(eps, x0, v, score or velocity networks; rectified flows and stochastic interpolants).
A step into a time where sigma = 0 (the final step to clean data of VP/EDM/RF grids) falls back
to Euler, because the velocity of eps/x0 networks is singular there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..tree import Tree, broadcast_leaves, leaves, lincomb, tree_map
from .base import StepRule, coef


def _h(t0: Tensor, t1: Tensor) -> Tensor:
    return t1 - t0


def _axpy_tree(h: Tensor, v: Tree, x: Tree) -> Tree:
    return tree_map(lambda vi, xi: xi + coef(h, xi) * vi, v, x)


def _ends_at_zero_noise(process: Any, x: Tree, t1: Tensor) -> Tensor | bool:
    """True (per sample) where some leaf has sigma(t1) = 0."""
    from ..processes.gaussian import GaussianProcess

    flags = [
        p.sigma(t1) == 0 for p in broadcast_leaves(x, process) if isinstance(p, GaussianProcess)
    ]
    if not flags:
        return False
    out = flags[0]
    for f in flags[1:]:
        out = out | f
    return out


def _select(mask: Tensor | bool, a: Tree, b: Tree) -> Tree:
    """Per-sample ``where(mask, a, b)``."""
    if isinstance(mask, bool):
        return a if mask else b
    if mask.ndim == 0:
        return a if bool(mask) else b
    return tree_map(lambda ai, bi: torch.where(coef(mask.to(ai.dtype), ai) > 0, ai, bi), a, b)


@dataclass(frozen=True)
class Euler(StepRule):
    """Explicit Euler on the probability-flow ODE (order 1)."""

    order: ClassVar[int] = 1

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        return _axpy_tree(_h(t0, t1), model(x, t0).velocity, x), state


@dataclass(frozen=True)
class Heun(StepRule):
    """Heun's second-order method.

    Heun's method (Karras et al. 2022, arXiv:2206.00364, Algorithm 1 with S_churn = 0),
    order 2; Euler on a final step to sigma = 0.
    """

    order: ClassVar[int] = 2

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        h = _h(t0, t1)
        d0 = model(x, t0).velocity
        x_euler = _axpy_tree(h, d0, x)
        final = _ends_at_zero_noise(model.process, x, t1)
        if final is True or (isinstance(final, Tensor) and bool(final.all())):
            return x_euler, state
        d1 = model(x_euler, t1).velocity
        x_heun = _axpy_tree(h, lincomb([0.5, 0.5], [d0, d1]), x)
        return _select(final, x_euler, x_heun), state


@dataclass(frozen=True)
class Midpoint(StepRule):
    """Explicit midpoint rule, order 2.

    This is RF-Solver-2 of Wang et al. 2024 (arXiv:2411.04746, eq. 8): its second-order Taylor
    step with the time derivative of the velocity taken by a forward difference over h/2 is
    algebraically the midpoint rule ``x1 = x + h v(x + h/2 v(x, t0), t0 + h/2)``.
    """

    order: ClassVar[int] = 2

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        h = _h(t0, t1)
        v0 = model(x, t0).velocity
        x_mid = _axpy_tree(0.5 * h, v0, x)
        v_mid = model(x_mid, t0 + 0.5 * h).velocity
        return _axpy_tree(h, v_mid, x), state


RFSolver = Midpoint


@dataclass(frozen=True)
class RK4(StepRule):
    """Classical fourth-order Runge-Kutta; Euler on a final step to sigma = 0."""

    order: ClassVar[int] = 4

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        h = _h(t0, t1)
        k1 = model(x, t0).velocity
        final = _ends_at_zero_noise(model.process, x, t1)
        if final is True or (isinstance(final, Tensor) and bool(final.all())):
            return _axpy_tree(h, k1, x), state
        k2 = model(_axpy_tree(0.5 * h, k1, x), t0 + 0.5 * h).velocity
        k3 = model(_axpy_tree(0.5 * h, k2, x), t0 + 0.5 * h).velocity
        k4 = model(_axpy_tree(h, k3, x), t1).velocity
        x_rk = _axpy_tree(h, lincomb([1 / 6, 1 / 3, 1 / 3, 1 / 6], [k1, k2, k3, k4]), x)
        return _select(final, _axpy_tree(h, k1, x), x_rk), state


# Dormand & Prince (1980) RK5(4)7M tableau.
_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_DP_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP_E = (  # b - b_hat: the embedded 4th-order error weights
    71 / 57600,
    0.0,
    -71 / 16695,
    71 / 1920,
    -17253 / 339200,
    22 / 525,
    -1 / 40,
)
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0  # standard step-size controller bounds


@dataclass(frozen=True)
class DormandPrince(StepRule):
    """Adaptive Dormand-Prince RK5(4) with an error-per-step controller (order 5).

    The grid's interval ``[t0, t1]`` is covered by as many internal steps as the tolerances
    need; with a 2-point grid the whole solve is adaptive. The state carries the last accepted
    internal step size to the next interval. Times must be shared by the batch.

    Attributes:
        rtol, atol: relative and absolute tolerances on the RMS error norm (Hairer et al.,
            Solving ODEs I, sec. II.4).
        max_steps: internal step budget per interval.
    """

    order: ClassVar[int] = 5
    rtol: float = 1e-5
    atol: float = 1e-5
    max_steps: int = 10_000

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        if t0.ndim != 0:
            raise ValueError(
                "DormandPrince needs one time for the whole batch: a grid of shape (n + 1,)"
            )
        t, end = float(t0), float(t1)
        h = -(t - end) if state is None else max(-(t - end), state)  # negative: backwards
        for _ in range(self.max_steps):
            if t <= end:
                break
            h = max(h, end - t)
            ks: list[Tree] = []
            for i in range(7):
                xi = x
                if i:
                    xi = _axpy_tree(
                        torch.tensor(h, dtype=torch.float64),
                        lincomb(list(_DP_A[i]), ks[:i]),
                        x,
                    )
                ks.append(model(xi, torch.tensor(t + _DP_C[i] * h, dtype=t0.dtype)).velocity)
            x_new = _axpy_tree(torch.tensor(h, dtype=torch.float64), lincomb(list(_DP_B), ks), x)
            err = lincomb([h * e for e in _DP_E], ks)
            ratio = _error_ratio(err, x, x_new, self.rtol, self.atol)
            if ratio <= 1.0:
                x, t = x_new, (end if h == end - t else t + h)
            factor = _SAFETY * ratio ** (-1 / 5) if ratio > 0 else _MAX_FACTOR
            h = h * min(_MAX_FACTOR, max(_MIN_FACTOR, factor))
        else:
            raise RuntimeError(f"DormandPrince: max_steps={self.max_steps} reached before t1")
        return x, h


def _error_ratio(err: Tree, x0: Tree, x1: Tree, rtol: float, atol: float) -> float:
    num, count = 0.0, 0
    for e, a, b in zip(leaves(err), leaves(x0), leaves(x1), strict=True):
        scale = atol + rtol * torch.maximum(a.abs(), b.abs())
        num += float(((e / scale) ** 2).sum())
        count += e.numel()
    return (num / max(count, 1)) ** 0.5

"""Momentum samplers against divergence artifacts at low step counts.

Wizadwongsa et al. 2023, "Diffusion Sampling with Momentum for Mitigating Divergence Artifacts"
(arXiv:2307.11118). The probability-flow ODE is written in DDIM's variables
``x_bar = x / alpha`` and ``sigma_bar = sigma / alpha = exp(-lambda)``, where it reads
``d x_bar / d sigma_bar = eps_hat``. Polyak's heavy ball (HB) averages the update direction,
``v <- (1 - beta) v + beta * direction``; beta = 1 recovers the plain method.

- :class:`PLMSHeavyBall`: Adams-Bashforth (PLMS) direction of order p, then HB (sec. 4.1).
- :class:`GHVB`: generalised HB: HB on eps first, then an Adams-Bashforth combination whose
  weights are mixed with beta so the update stays consistent (sec. 4.2).
- :class:`DPMSolverPP2MHeavyBall`: HB on DPM-Solver++(2M)'s data-prediction direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..tree import Tree, lincomb, tree_map
from .base import StepRule, coef
from .dpm import _final

# Adams-Bashforth weights mixed with momentum b (b = 1: plain AB of that order), newest first;
# each row is (numerators as (constant, slope in b) pairs, denominator). Wizadwongsa et al.
# 2023, sec. 4.2.
_AB_MIXED: dict[int, tuple[tuple[tuple[float, float], ...], float]] = {
    1: (((0.0, 1.0),), 1.0),
    2: (((2.0, 1.0), (-2.0, 1.0)), 2.0),
    3: (((18.0, 5.0), (-24.0, 8.0), (6.0, -1.0)), 12.0),
    4: (((46.0, 9.0), (-78.0, 19.0), (42.0, -5.0), (-10.0, 1.0)), 24.0),
}


def _ab_weights(order: int, b: float) -> list[float]:
    """Weights of the newest ``order`` directions (newest first), divided by b."""
    rows, den = _AB_MIXED[order]
    return [(c + s * b) / den / b for c, s in rows]


@dataclass(frozen=True)
class _MomentumState:
    velocity: Tree = None
    history: tuple[Tree, ...] = ()
    x0_prev: Tree = None
    t_prev: Any = None


def _check(order: int, beta: float) -> None:
    if order not in _AB_MIXED:
        raise ValueError(f"`order` must be one of {sorted(_AB_MIXED)}, got {order}")
    if not 0 < beta <= 1:
        raise ValueError(f"`beta` must lie in (0, 1], got {beta}")


def _ddim_move(x: Tree, direction: Tree, process: Any, t0, t1) -> Tree:
    """``x1 = alpha1 (x / alpha0 + (sigma_bar1 - sigma_bar0) direction)``."""

    def leaf(xi, di, p):
        a0, a1 = p.alpha(t0), p.alpha(t1)
        dsb = p.sigma(t1) / a1 - p.sigma(t0) / a0
        return coef(a1 / a0, xi) * xi + coef(a1 * dsb, xi) * di

    return tree_map(leaf, x, direction, process)


@dataclass(frozen=True)
class PLMSHeavyBall(StepRule):
    """PLMS (Adams-Bashforth in sigma_bar) of order ``p`` with heavy-ball momentum ``beta``.

    With beta = 1 this is PLMS / PNDM's pseudo linear multistep method (Liu et al. 2022,
    arXiv:2202.09778); the Adams-Bashforth weights assume equal steps in sigma_bar.
    """

    p: int = 2
    beta: float = 0.8

    def __post_init__(self) -> None:
        _check(self.p, self.beta)

    @property
    def order(self) -> int:  # type: ignore[override]
        """Convergence order: 1 with momentum (beta < 1), else p (at most 2).

        The constant Adams-Bashforth weights cap the order at 2 on a non-uniform sigma_bar grid.
        """
        return min(self.p, 2) if self.beta == 1 else 1

    def init(self, x):  # noqa: D102
        return _MomentumState()

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        eps = model(x, t0).eps
        history = (eps, *state.history)[: self.p]
        weights = _ab_weights(len(history), 1.0)
        direction = lincomb(weights, list(history))
        vel = (
            direction
            if state.velocity is None
            else lincomb([1 - self.beta, self.beta], [state.velocity, direction])
        )
        return _ddim_move(x, vel, model.process, t0, t1), _MomentumState(vel, history)


@dataclass(frozen=True)
class GHVB(StepRule):
    """Generalised heavy ball of order ``p`` (Wizadwongsa et al. 2023, sec. 4.2).

    ``v <- (1 - beta) v + beta eps_hat`` first; the update direction is an Adams-Bashforth
    combination of the last ``p`` velocities with beta-mixed weights. beta = 1 is PLMS of order
    p; ``p = 1`` is plain heavy ball on DDIM.
    """

    p: int = 2
    beta: float = 0.8

    def __post_init__(self) -> None:
        _check(self.p, self.beta)

    @property
    def order(self) -> int:  # type: ignore[override]
        """Convergence order p, at most 2.

        The beta-mixed weights keep GHVB consistent to order p; as for PLMS, constant weights
        cap it at 2 on a non-uniform sigma_bar grid.
        """
        return min(self.p, 2)

    def init(self, x):  # noqa: D102
        return _MomentumState()

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        eps = model(x, t0).eps
        vel = (
            eps
            if state.velocity is None
            else lincomb([1 - self.beta, self.beta], [state.velocity, eps])
        )
        history = (vel, *state.history)[: self.p]
        direction = lincomb(_ab_weights(len(history), self.beta), list(history))
        return _ddim_move(x, direction, model.process, t0, t1), _MomentumState(vel, history)


@dataclass(frozen=True)
class DPMSolverPP2MHeavyBall(StepRule):
    """DPM-Solver++(2M) with heavy-ball momentum.

    The data-prediction direction ``D = x0 + (x0 - x0_prev) / (2 r)`` is averaged as
    ``v <- (1 - beta) v + beta D`` (Wizadwongsa et al. 2023).
    """

    beta: float = 0.8

    def __post_init__(self) -> None:
        _check(1, self.beta)

    @property
    def order(self) -> int:  # type: ignore[override]
        """2 without momentum (beta = 1), else 1."""
        return 2 if self.beta == 1 else 1

    def init(self, x):  # noqa: D102
        return _MomentumState()

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        process = model.process
        x0 = model(x, t0).x0
        final = _final(process, x, t1)

        def direction(m0, m1, p):
            if m1 is None or final:
                return m0
            h = p.lambda_(t1) - p.lambda_(t0)
            r = (p.lambda_(t0) - p.lambda_(state.t_prev)) / h
            return coef(1 + 1 / (2 * r), m0) * m0 - coef(1 / (2 * r), m1) * m1

        d = tree_map(direction, x0, state.x0_prev, process)
        vel = (
            d
            if state.velocity is None
            else lincomb([1 - self.beta, self.beta], [state.velocity, d])
        )

        def move(xi, vi, p):
            h = p.lambda_(t1) - p.lambda_(t0)
            return (
                coef(p.sigma(t1) / p.sigma(t0), xi) * xi
                - coef(p.alpha(t1) * torch.expm1(-h), xi) * vi
            )

        x1 = tree_map(move, x, vel, process)
        return x1, _MomentumState(velocity=vel, x0_prev=x0, t_prev=t0)

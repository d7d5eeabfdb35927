"""Adaptive step-size DPM-Solver (Lu et al. 2022, arXiv:2206.00927, sec. 3.4 and Algorithm 4).

Each attempted step in lambda takes a lower- and a higher-order singlestep DPM-Solver update
that share their network evaluations (DPM-Solver-12: orders 1 and 2, two NFE; DPM-Solver-23:
orders 2 and 3 with r1 = 1/3, three NFE), accepts the higher one when the scaled difference
``E = RMS((x_high - x_low) / max(atol, rtol max(|x_low|, |x_prev|)))`` is at most 1, and sets
the next step to ``theta h E^(-1/k)`` with k the lower order. Defaults from the paper
(theta = 0.9, h_init = 0.05, rtol = 0.05, atol = 0.0078 for data in [-1, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..tree import leaves, tree_map
from .base import StepRule, coef
from .dpm import _eps_step, _final, _first_order_pp, _h_r, _ref_process

_LAMBDA_TOL = 1e-5  # the solve ends when lambda is this close to its target (paper: 1e-5)
_MAX_GROWTH = 10.0  # bound on h_new / h: E can vanish where eps is locally linear


@dataclass(frozen=True)
class AdaptiveDPMSolver(StepRule):
    """Adaptive DPM-Solver-12 (``solver_order=2``) or DPM-Solver-23 (``solver_order=3``).

    Steps adapt inside each grid interval (use a 2-point grid for a fully adaptive solve).

    The state carries the last accepted step size in lambda to the next interval. Times must be
    shared by the batch. A final interval into sigma = 0 takes one exact first-order step.
    """

    solver_order: int = 3
    rtol: float = 0.05
    atol: float = 0.0078
    theta: float = 0.9
    h_init: float = 0.05
    max_steps: int = 10_000
    order: ClassVar[int] = 3

    def __post_init__(self) -> None:
        if self.solver_order not in (2, 3):
            raise ValueError(f"`solver_order` must be 2 or 3, got {self.solver_order}")

    def __str__(self) -> str:
        return f"AdaptiveDPMSolver-{self.solver_order - 1}{self.solver_order}"

    def _pair(self, model, x, t0, t1, e0):
        """(x_low, x_high) from t0 to t1 sharing network evaluations."""
        process = model.process
        ref = _ref_process(process, x)
        lam0 = ref.lambda_(t0)
        h_ref = ref.lambda_(t1) - lam0
        if self.solver_order == 2:  # DPM-Solver-1 and -2 (r1 = 1/2)
            s1 = ref.t_from_lambda(lam0 + 0.5 * h_ref)
            u1 = tree_map(lambda xi, ei, p: _eps_step(xi, ei, p, t0, s1), x, e0, process)
            e1 = model(u1, s1).eps
            low = tree_map(lambda xi, ei, p: _eps_step(xi, ei, p, t0, t1), x, e0, process)

            def second(xi, a, b, p):
                h, r = _h_r(p, t0, t1, s1)
                c = p.sigma(t1) / (2 * r) * torch.expm1(h)
                return _eps_step(xi, a, p, t0, t1) - coef(c, xi) * (b - a)

            return low, tree_map(second, x, e0, e1, process)
        s1 = ref.t_from_lambda(lam0 + h_ref / 3)
        s2 = ref.t_from_lambda(lam0 + 2 * h_ref / 3)
        u1 = tree_map(lambda xi, ei, p: _eps_step(xi, ei, p, t0, s1), x, e0, process)
        e1 = model(u1, s1).eps

        def low_leaf(xi, a, b, p):  # DPM-Solver-2 with r1 = 1/3
            h, r1 = _h_r(p, t0, t1, s1)
            c = p.sigma(t1) / (2 * r1) * torch.expm1(h)
            return _eps_step(xi, a, p, t0, t1) - coef(c, xi) * (b - a)

        def u2_leaf(xi, a, b, p):
            _, r1 = _h_r(p, t0, t1, s1)
            h2, r2 = _h_r(p, t0, t1, s2)
            hr2 = h2 * r2
            c = p.sigma(s2) * r2 / r1 * (torch.expm1(hr2) / hr2 - 1)
            return _eps_step(xi, a, p, t0, s2) - coef(c, xi) * (b - a)

        low = tree_map(low_leaf, x, e0, e1, process)
        e2 = model(tree_map(u2_leaf, x, e0, e1, process), s2).eps

        def high_leaf(xi, a, c2, p):
            h, r2 = _h_r(p, t0, t1, s2)
            c = p.sigma(t1) / r2 * (torch.expm1(h) / h - 1)
            return _eps_step(xi, a, p, t0, t1) - coef(c, xi) * (c2 - a)

        return low, tree_map(high_leaf, x, e0, e2, process)

    def _error(self, low, high, prev) -> float:
        num, count = 0.0, 0
        for lo, hi, pv in zip(leaves(low), leaves(high), leaves(prev), strict=True):
            scale = torch.clamp(self.rtol * torch.maximum(lo.abs(), pv.abs()), min=self.atol)
            num += float(((hi - lo) / scale).double().pow(2).sum())
            count += lo.numel()
        return (num / max(count, 1)) ** 0.5

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        if t0.ndim != 0:
            raise ValueError("AdaptiveDPMSolver needs one time for the whole batch")
        process = model.process
        if _final(process, x, t1):
            pred = model(x, t0)
            return tree_map(
                lambda xi, x0i, p: _first_order_pp(xi, x0i, p, t0, t1), x, pred.x0, process
            ), state
        ref = _ref_process(process, x)
        lam, lam_end = ref.lambda_(t0), ref.lambda_(t1)
        h = torch.as_tensor(self.h_init if state is None else state, dtype=lam.dtype)
        t, e0 = t0, None
        for _ in range(self.max_steps):
            if float(lam_end - lam) <= _LAMBDA_TOL:
                break
            h = torch.minimum(h, lam_end - lam)
            t_next = t1 if bool(h == lam_end - lam) else ref.t_from_lambda(lam + h)
            if e0 is None:  # kept across rejected attempts: same x and t
                e0 = model(x, t).eps
            low, high = self._pair(model, x, t, t_next, e0)
            err = self._error(low, high, x)
            if err <= 1.0:
                x, t, lam, e0 = high, t_next, ref.lambda_(t_next), None
            growth = (
                self.theta * err ** (-1.0 / (self.solver_order - 1)) if err > 0 else _MAX_GROWTH
            )
            h = h * min(growth, _MAX_GROWTH)
        else:
            raise RuntimeError(f"AdaptiveDPMSolver: max_steps={self.max_steps} reached")
        return x, float(h)

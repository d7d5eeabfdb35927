"""Exponential-integrator step rules in half log-SNR lambda.

Exponential-integrator step rules in half log-SNR lambda: DDIM, DPM-Solver, DPM-Solver++,
SDE-DPM-Solver++ and UniPC.

These rules solve the semi-linear probability-flow ODE exactly in its linear part, so they work
for any Gaussian process (VP, VE, EDM, rectified flow, ...) given alpha, sigma and lambda, and
for product states leaf by leaf (each leaf has its own lambda(t) on a shared time grid). A step
into sigma = 0 uses the exact first-order limit ``x1 = alpha1 x0_hat``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..ops.fused import lincomb
from ..tree import Tree, broadcast_leaves, tree_map
from .base import StepRule, coef, expm1, host_scalars, noise_like


def _final(process: Any, x: Tree, t1: Tensor) -> bool:
    """True when the step ends at sigma = 0 for some leaf and sample."""
    return any(bool((p.sigma(t1) == 0).any()) for p in broadcast_leaves(x, process))


def _ref_process(process: Any, x: Tree) -> Any:
    return broadcast_leaves(x, process)[0]


def _first_order_pp(xi: Tensor, x0i: Tensor, p, t0: Tensor, t1: Tensor) -> Tensor:
    """DPM-Solver++(1) = DDIM(eta = 0) in data-prediction form (Lu et al. 2022b, eq. 8)."""
    s0, a1, s1 = p.sigma(t0), p.alpha(t1), p.sigma(t1)
    h = p.lambda_(t1) - p.lambda_(t0)
    return coef(s1 / s0, xi) * xi - coef(a1 * torch.expm1(-h), xi) * x0i


@dataclass(frozen=True)
class DDIM(StepRule):
    """DDIM (Song, Meng & Ermon 2021, arXiv:2010.02502, eq. 12) for any Gaussian process.

    ``x1 = alpha1 x0 + sqrt(sigma1^2 - c^2) eps + c z`` with
    ``c = eta sigma1 sqrt(1 - exp(-2 h))``, ``h = lambda1 - lambda0``; for VP this is the
    paper's sigma_t(eta). eta = 0 is deterministic (= DPM-Solver-1), eta = 1 is DDPM.
    """

    eta: float = 0.0
    order: ClassVar[int] = 1

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        """Random only when eta > 0."""
        return self.eta > 0

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        pred = model(x, t0)
        z = noise_like(x, model.process, generator) if self.eta > 0 else None

        def leaf(xi, x0i, ei, zi, p):
            a1, s1 = p.alpha(t1), p.sigma(t1)
            h = p.lambda_(t1) - p.lambda_(t0)
            if zi is None:  # deterministic (eta = 0): also valid forward in time (inversion)
                return coef(a1, xi) * x0i + coef(s1, xi) * ei
            c = self.eta * s1 * torch.sqrt(-torch.expm1(-2 * h))
            out = coef(a1, xi) * x0i + coef(torch.sqrt((s1**2 - c**2).clamp_min(0)), xi) * ei
            return out + coef(c, xi) * zi

        return tree_map(leaf, x, pred.x0, pred.eps, z, model.process), state


@dataclass(frozen=True)
class DPMSolver(StepRule):
    """Singlestep DPM-Solver-1/2/3 in noise-prediction form.

    Singlestep DPM-Solver-1/2/3 in noise-prediction form (Lu et al. 2022, arXiv:2206.00927,
    eq. 3.7 for order 1, Algorithms 1-2 with r1 = 1/2 and r1, r2 = 1/3, 2/3).

    NFE per step equals ``solver_order``. Intermediate times are placed in lambda of the first
    leaf's process.
    """

    solver_order: int = 2

    def __post_init__(self) -> None:
        if self.solver_order not in (1, 2, 3):
            raise ValueError(f"`solver_order` must be 1, 2 or 3, got {self.solver_order}")

    @property
    def order(self) -> int:  # type: ignore[override]
        """Convergence order = solver_order."""
        return self.solver_order

    def __str__(self) -> str:
        return f"DPMSolver-{self.solver_order}"

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        process = model.process
        pred0 = model(x, t0)
        lam0_ok = bool(torch.isfinite(_ref_process(process, x).lambda_(t0)).all())
        if self.solver_order == 1 or _final(process, x, t1) or not lam0_ok:
            return tree_map(
                lambda xi, x0i, p: _first_order_pp(xi, x0i, p, t0, t1), x, pred0.x0, process
            ), state
        ref = _ref_process(process, x)
        h_ref = ref.lambda_(t1) - ref.lambda_(t0)
        if self.solver_order == 2:
            s1 = ref.t_from_lambda(ref.lambda_(t0) + 0.5 * h_ref)
            u1 = tree_map(lambda xi, ei, p: _eps_step(xi, ei, p, t0, s1), x, pred0.eps, process)
            e1 = model(u1, s1).eps

            def leaf2(xi, e0, e1i, p):
                h, r = _h_r(p, t0, t1, s1)
                base = _eps_step(xi, e0, p, t0, t1)
                return base - coef(p.sigma(t1) / (2 * r) * torch.expm1(h), xi) * (e1i - e0)

            return tree_map(leaf2, x, pred0.eps, e1, process), state
        lam0 = ref.lambda_(t0)
        s1 = ref.t_from_lambda(lam0 + h_ref / 3)
        s2 = ref.t_from_lambda(lam0 + 2 * h_ref / 3)
        u1 = tree_map(lambda xi, ei, p: _eps_step(xi, ei, p, t0, s1), x, pred0.eps, process)
        e1 = model(u1, s1).eps

        def leaf_u2(xi, e0, e1i, p):
            _, r1 = _h_r(p, t0, t1, s1)
            h2, r2 = _h_r(p, t0, t1, s2)
            hr2 = h2 * r2
            c = p.sigma(s2) * r2 / r1 * (torch.expm1(hr2) / hr2 - 1)
            return _eps_step(xi, e0, p, t0, s2) - coef(c, xi) * (e1i - e0)

        u2 = tree_map(leaf_u2, x, pred0.eps, e1, process)
        e2 = model(u2, s2).eps

        def leaf3(xi, e0, e2i, p):
            h, r2 = _h_r(p, t0, t1, s2)
            c = p.sigma(t1) / r2 * (torch.expm1(h) / h - 1)
            return _eps_step(xi, e0, p, t0, t1) - coef(c, xi) * (e2i - e0)

        return tree_map(leaf3, x, pred0.eps, e2, process), state


def _h_r(p, t0: Tensor, t1: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """Step h = lambda(t1) - lambda(t0) and the fraction r = (lambda(s) - lambda(t0)) / h."""
    lam0 = p.lambda_(t0)
    h = p.lambda_(t1) - lam0
    return h, (p.lambda_(s) - lam0) / h


def _eps_step(xi: Tensor, ei: Tensor, p, t0: Tensor, t1: Tensor) -> Tensor:
    """DPM-Solver-1: ``alpha1/alpha0 x - sigma1 expm1(h) eps`` (eq. 3.7)."""
    a0, a1, s1 = p.alpha(t0), p.alpha(t1), p.sigma(t1)
    h = p.lambda_(t1) - p.lambda_(t0)
    return coef(a1 / a0, xi) * xi - coef(s1 * torch.expm1(h), xi) * ei


@dataclass(frozen=True)
class DPMSolverPP2S(StepRule):
    """Singlestep DPM-Solver++(2S).

    Singlestep DPM-Solver++(2S) (Lu et al. 2022b, arXiv:2211.01095, Algorithm 1, r = 1/2);
    two NFE per step.
    """

    order: ClassVar[int] = 2

    def __str__(self) -> str:
        return "DPMSolver++(2S)"

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        return _pp2s_update(model, x, model(x, t0).x0, t0, t1), state


def _pp2s_update(model, x: Tree, m0: Tree, t0: Tensor, t1: Tensor) -> Tree:
    """One DPM-Solver++(2S) step given the data prediction ``m0`` at (x, t0); one more NFE."""
    process = model.process
    ref = _ref_process(process, x)
    if _final(process, x, t1) or not bool(torch.isfinite(ref.lambda_(t0)).all()):
        return tree_map(lambda xi, x0i, p: _first_order_pp(xi, x0i, p, t0, t1), x, m0, process)
    s = ref.t_from_lambda(0.5 * (ref.lambda_(t0) + ref.lambda_(t1)))
    u = tree_map(lambda xi, x0i, p: _first_order_pp(xi, x0i, p, t0, s), x, m0, process)
    x0_s = model(u, s).x0

    def leaf(xi, m0i, ms, p):
        _, r = _h_r(p, t0, t1, s)
        d = coef(1 - 1 / (2 * r), xi) * m0i + coef(1 / (2 * r), xi) * ms
        return _first_order_pp(xi, d, p, t0, t1)

    return tree_map(leaf, x, m0, x0_s, process)


@dataclass(frozen=True)
class _History:
    """Multistep history: times and data predictions, oldest first."""

    times: tuple[Tensor, ...] = ()
    x0s: tuple[Tree, ...] = ()
    pending: Any = None  # UniPC: (x_prev, t_prev, times, x0s, order) for the corrector

    def push(self, t: Tensor, x0: Tree, keep: int) -> _History:
        times = (*self.times, t)[-keep:]
        x0s = (*self.x0s, x0)[-keep:]
        return _History(times=times, x0s=x0s, pending=self.pending)


@dataclass(frozen=True)
class _Multistep(StepRule):
    """Base of multistep rules: the state is the history of data predictions."""

    def init(self, x: Tree) -> _History:  # noqa: D102
        return _History()


def _usable_order(process: Any, x: Tree, hist: _History, wanted: int, t1: Tensor) -> int:
    """The multistep order usable at this step.

    Lower the multistep order at warm-up, at a final step to sigma = 0, and wherever an
    earlier lambda is infinite (a start at alpha = 0, e.g. rectified flow at t = 1).
    """
    if _final(process, x, t1):
        return 1
    order = min(wanted, len(hist.times))
    ref = _ref_process(process, x)
    while order > 1:
        lams = host_scalars(*[ref.lambda_(t) for t in hist.times[-order:]])
        if all(
            math.isfinite(v) if isinstance(v, float) else bool(torch.isfinite(v).all())
            for v in lams
        ):
            break
        order -= 1
    return order


@dataclass(frozen=True)
class DPMSolverPP2M(_Multistep):
    """DPM-Solver++(2M), Lu et al. 2022b (arXiv:2211.01095), Algorithm 2; one NFE per step."""

    order: ClassVar[int] = 2

    def __str__(self) -> str:
        return "DPMSolver++(2M)"

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        process = model.process
        hist = state.push(t0, model(x, t0).x0, keep=2)
        order = _usable_order(process, x, hist, 2, t1)
        return _multistep_low(process, x, hist, order, t0, t1), hist


@dataclass(frozen=True)
class DPMSolverPP3M(_Multistep):
    """DPM-Solver++(3M), third-order multistep.

    DPM-Solver++(3M): third-order multistep data-prediction solver (Lu et al. 2022b,
    arXiv:2211.01095, sec. 3.3/appendix, the third-order multistep update); one NFE per step.

    The first two steps have lower order (warm-up, as in the reference implementation). Their
    local errors carry the factor alpha(t_max) ~ 0 at the prior end, so in practice the global
    order is 3; ``warmup_singlestep`` makes it 3 in every case by taking the first step with
    DPM-Solver++(2S) (one extra NFE).
    """

    warmup_singlestep: bool = False
    order: ClassVar[int] = 3

    def __str__(self) -> str:
        return "DPMSolver++(3M)"

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        process = model.process
        hist = state.push(t0, model(x, t0).x0, keep=3)
        order = _usable_order(process, x, hist, 3, t1)
        if order == 1 and self.warmup_singlestep and len(hist.times) == 1:
            return _pp2s_update(model, x, hist.x0s[-1], t0, t1), hist
        if order < 3:
            return _multistep_low(process, x, hist, order, t0, t1), hist
        t_m1, t_m2 = hist.times[-2], hist.times[-3]

        def leaf(xi, m2, m1, m0, p):
            lam0 = p.lambda_(t0)
            h = p.lambda_(t1) - lam0
            r0 = (lam0 - p.lambda_(t_m1)) / h
            r1 = (p.lambda_(t_m1) - p.lambda_(t_m2)) / h
            phi1 = torch.expm1(-h)
            phi2 = phi1 / h + 1
            phi3 = phi2 / h - 0.5
            a1 = p.alpha(t1)
            # x1 = s1/s0 x - a1 phi1 m0 + a1 phi2 D1 - 2 a1 phi3 D2 with the divided differences
            # D1 = (1 + q) D1_0 - q D1_1, D2 = (D1_0 - D1_1) / (r0 + r1), q = r0 / (r0 + r1),
            # D1_0 = (m0 - m1) / r0, D1_1 = (m1 - m2) / r1, expanded into weights of m0, m1, m2.
            q = r0 / (r0 + r1)
            u, w = a1 * phi2, 2 * a1 * phi3 / (r0 + r1)
            c0 = -a1 * phi1 + u * (1 + q) / r0 - w / r0
            c1 = -u * ((1 + q) / r0 + q / r1) + w * (1 / r0 + 1 / r1)
            c2 = u * q / r1 - w / r1
            return lincomb([p.sigma(t1) / p.sigma(t0), c0, c1, c2], [xi, m0, m1, m2])

        return tree_map(leaf, x, hist.x0s[-3], hist.x0s[-2], hist.x0s[-1], process), hist


def _multistep_low(process, x, hist: _History, order: int, t0: Tensor, t1: Tensor) -> Tree:
    """DPM-Solver++ multistep update of order 1 or 2.

    Used for warm-up, final steps and 2M itself, as one fused linear combination of the state
    and the stored predictions.
    """
    if order == 1:

        def first(xi, m0, p):
            l0, l1, s0, s1, a1 = host_scalars(
                p.lambda_(t0), p.lambda_(t1), p.sigma(t0), p.sigma(t1), p.alpha(t1)
            )
            return lincomb([s1 / s0, -a1 * expm1(l0 - l1)], [xi, m0])

        return tree_map(first, x, hist.x0s[-1], process)
    t_prev = hist.times[-2]

    def second(xi, m1, m0, p):
        lp, l0, l1, s0, s1, a1 = host_scalars(
            p.lambda_(t_prev), p.lambda_(t0), p.lambda_(t1), p.sigma(t0), p.sigma(t1), p.alpha(t1)
        )
        h = l1 - l0
        r = (l0 - lp) / h
        c = -a1 * expm1(-h)
        return lincomb([s1 / s0, c * (1 + 1 / (2 * r)), -c / (2 * r)], [xi, m0, m1])

    return tree_map(second, x, hist.x0s[-2], hist.x0s[-1], process)


@dataclass(frozen=True)
class SDEDPMSolverPP2M(_Multistep):
    """SDE-DPM-Solver++(2M).

    SDE-DPM-Solver++(2M) (Lu et al. 2022b, arXiv:2211.01095, appendix; the "midpoint"
    second-order variant): ``x1 = sigma1/sigma0 e^{-h} x + alpha1 (1 - e^{-2h}) D
    + sigma1 sqrt(1 - e^{-2h}) z``.
    """

    order: ClassVar[int] = 1  # strong order; the data term is second order
    stochastic: ClassVar[bool] = True

    def __str__(self) -> str:
        return "SDE-DPMSolver++(2M)"

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        process = model.process
        hist = state.push(t0, model(x, t0).x0, keep=2)
        order = _usable_order(process, x, hist, 2, t1)
        z = noise_like(x, process, generator)
        t_prev = hist.times[-2] if order == 2 else None

        def leaf(xi, m0, m1, zi, p):
            lam0 = p.lambda_(t0)
            h = p.lambda_(t1) - lam0
            a1, s0, s1 = p.alpha(t1), p.sigma(t0), p.sigma(t1)
            e2h = -torch.expm1(-2 * h)
            out = coef(s1 / s0 * torch.exp(-h), xi) * xi + coef(a1 * e2h, xi) * m0
            if t_prev is not None:
                r = (lam0 - p.lambda_(t_prev)) / h
                out = out + coef(0.5 * a1 * e2h / r, xi) * (m0 - m1)
            return out + coef(s1 * torch.sqrt(e2h), xi) * zi

        m1 = hist.x0s[-2] if order == 2 else hist.x0s[-1]
        return tree_map(leaf, x, hist.x0s[-1], m1, z, process), hist


@dataclass(frozen=True)
class UniPC(_Multistep):
    """UniPC: unified predictor-corrector.

    UniPC (Zhao et al. 2023, arXiv:2302.04867): the UniP-p multistep predictor with the UniC
    corrector, data-prediction form, ``B(h) = expm1(-h)`` ("bh2") or ``-h`` ("bh1").

    The corrector reuses the network evaluation of the next step, so the cost stays one NFE per
    step; ``order`` is the predictor order (the corrector raises it by one).
    """

    solver_order: int = 2
    variant: str = "bh2"
    corrector: bool = True

    def __post_init__(self) -> None:
        if self.solver_order not in (1, 2, 3):
            raise ValueError(f"`solver_order` must be 1, 2 or 3, got {self.solver_order}")
        if self.variant not in ("bh1", "bh2"):
            raise ValueError(f"`variant` must be 'bh1' or 'bh2', got {self.variant!r}")

    @property
    def order(self) -> int:  # type: ignore[override]
        """Convergence order of the configured solver.

        Predictor order + 1 with the corrector, capped at 3: the first step (UniP-1 with
        UniC-1) has a local error O(h^3), which bounds the global order by 3.
        """
        return min(self.solver_order + (1 if self.corrector else 0), 3)

    def __str__(self) -> str:
        return f"UniPC-{self.solver_order}({self.variant})"

    def _coefficients(self, p, t0, t1, prev_times, order, like):
        """(h_phi_1, B_h, rks, D-weights for predictor, rhos for corrector)."""
        lam0 = p.lambda_(t0)
        h = p.lambda_(t1) - lam0
        hh = -h
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        b_h = torch.expm1(hh) if self.variant == "bh2" else hh
        rks = [(p.lambda_(tk) - lam0) / h for tk in prev_times] + [torch.ones_like(h)]
        rows, b = [], []
        fact = 1
        for i in range(1, order + 1):
            rows.append(torch.stack([r ** (i - 1) for r in rks], dim=-1))
            fact *= i
            b.append(h_phi_k * fact / b_h)
            h_phi_k = h_phi_k / hh - 1 / (fact * (i + 1))
        big_r = torch.stack(rows, dim=-2)  # (..., order, order)
        b_vec = torch.stack(b, dim=-1)
        if order == 1:
            rho_p = None
            rho_c = torch.full_like(b_vec, 0.5)
        else:
            rho_p = (
                torch.full_like(b_vec[..., :1], 0.5)
                if order == 2
                else torch.linalg.solve(big_r[..., :-1, :-1], b_vec[..., :-1])
            )
            rho_c = torch.linalg.solve(big_r, b_vec)
        return h_phi_1, b_h, rks, rho_p, rho_c

    def _base(self, xi, m0, p, t0, t1, h_phi_1):
        return coef(p.sigma(t1) / p.sigma(t0), xi) * xi - coef(p.alpha(t1) * h_phi_1, xi) * m0

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        process = model.process
        m_new = model(x, t0).x0
        if self.corrector and state.pending is not None:
            x = self._correct(process, state.pending, m_new, t0)
        hist = state.push(t0, m_new, keep=self.solver_order)
        order = _usable_order(process, x, hist, self.solver_order, t1)
        prev_times = list(hist.times[-order:-1])[::-1]  # t_{-1}, t_{-2}, ...
        prev_x0s = list(hist.x0s[-order:-1])[::-1]

        def leaf(xi, m0, *rest):
            *ms, p = rest
            h_phi_1, b_h, rks, rho_p, _ = self._coefficients(p, t0, t1, prev_times, order, xi)
            out = self._base(xi, m0, p, t0, t1, h_phi_1)
            if rho_p is None:
                return out
            corr = torch.zeros_like(xi)
            for k, mk in enumerate(ms):
                corr = corr + coef(rho_p[..., k] / rks[k], xi) * (mk - m0)
            return out - coef(p.alpha(t1) * b_h, xi) * corr

        x1 = tree_map(leaf, x, m_new, *prev_x0s, process)
        pending = (x, t0, t1, tuple(prev_times), tuple(prev_x0s), m_new, order)
        return x1, _History(times=hist.times, x0s=hist.x0s, pending=pending)

    def _correct(self, process, pending, m_t, t_new):
        x_prev, t0, t1, prev_times, prev_x0s, m0_tree, order = pending

        def leaf(xi, mt, m0, *rest):
            *ms, p = rest
            h_phi_1, b_h, rks, _, rho_c = self._coefficients(p, t0, t1, list(prev_times), order, xi)
            out = self._base(xi, m0, p, t0, t1, h_phi_1)
            corr = torch.zeros_like(xi)
            for k, mk in enumerate(ms):
                corr = corr + coef(rho_c[..., k] / rks[k], xi) * (mk - m0)
            corr = corr + coef(rho_c[..., -1], xi) * (mt - m0)
            return out - coef(p.alpha(t1) * b_h, xi) * corr

        return tree_map(leaf, x_prev, m_t, m0_tree, *prev_x0s, process)

"""DPM-Solver-v3: exponential integrators with empirical model statistics (EMS).

DPM-Solver-v3 (Zheng, Lu, Chen & Zhu 2023, arXiv:2310.13268) rewrites the probability-flow
ODE of a Gaussian process with three per-dimension functions of the half log-SNR lambda,
estimated from the model itself on a calibration set:

* ``l``: the expected diagonal of the Jacobian of ``N = sigma * eps`` w.r.t. ``x`` (the
  linear part of the network, absorbed into the exponential factor);
* ``s``, ``b``: the least-squares fit ``f' ~ s f + b`` of the remaining term
  ``f = (sigma eps - l x) / alpha`` along the ODE trajectories (its linear drift in lambda).

With ``y = x / alpha`` the ODE reads ``dy/dlambda = -l y - f``; writing ``f`` through
``g = exp(-S) f - B`` (``S = int s``, ``B = int b exp(-S)``), which the statistics make nearly
constant, and Taylor-expanding ``g`` from past evaluations gives the multistep predictor; the
UniC-style corrector reuses the next step's evaluation. With ``l = 1``, ``s = b = 0`` (see
:meth:`ModelStatistics.degenerate`) the method is DPM-Solver++ with exact phi-functions.

The statistics live on a lambda grid as piecewise-linear functions; every integral a step needs
is taken on a fine local grid between its end points, so any time grid can be sampled
(no snapping to the statistics grid). They are saved as safetensors with JSON metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .base import StepRule

__all__ = ["DPMSolverV3", "ModelStatistics", "estimate_statistics"]

_FORMAT = "diffcore.dpm_solver_v3.ems"
_VERSION = 1


@dataclass(frozen=True)
class ModelStatistics:
    """Empirical model statistics of DPM-Solver-v3 on an increasing half log-SNR grid.

    Attributes:
        lambdas: (K,) strictly increasing half log-SNR knots.
        l: (K, *S) expected Jacobian diagonal of ``sigma * eps`` at each knot.
        s: (K, *S) slope of the linear fit of ``f'`` on ``f``.
        b: (K, *S) intercept of that fit.

    ``S`` is the shape of one sample (e.g. ``(C, H, W)``); values between knots are linear in
    lambda and constant beyond the end knots.
    """

    lambdas: Tensor
    l: Tensor  # noqa: E741 - the paper's name
    s: Tensor
    b: Tensor

    def __post_init__(self) -> None:
        k = self.lambdas.shape
        if self.lambdas.ndim != 1 or k[0] < 2:
            raise ValueError(f"`lambdas` must have shape (K,) with K >= 2, got {tuple(k)}")
        if not bool((self.lambdas[1:] > self.lambdas[:-1]).all()):
            raise ValueError("`lambdas` must be strictly increasing")
        for name in ("l", "s", "b"):
            v = getattr(self, name)
            if v.shape[:1] != k or v.shape != self.l.shape:
                raise ValueError(
                    f"`{name}` must have shape (K, *S) = {(k[0], *self.l.shape[1:])}, "
                    f"got {tuple(v.shape)}"
                )
            if not bool(torch.isfinite(v).all()):
                raise ValueError(f"`{name}` has NaN or inf entries")

    @property
    def sample_shape(self) -> torch.Size:
        """Shape ``S`` of one sample."""
        return self.l.shape[1:]

    @classmethod
    def degenerate(cls, lambdas: Tensor, sample_shape: tuple[int, ...]) -> ModelStatistics:
        """``l = 1, s = b = 0``: DPM-Solver-v3 then is DPM-Solver++ (data prediction)."""
        lam = torch.as_tensor(lambdas, dtype=torch.float64)
        ones = torch.ones((lam.shape[0], *sample_shape), dtype=torch.float64)
        return cls(lam, ones, torch.zeros_like(ones), torch.zeros_like(ones))

    def to(self, device=None, dtype=None) -> ModelStatistics:
        """Copy to a device / dtype (``self`` when already there: no copy, no re-validation)."""
        if all(
            (device is None or v.device == torch.device(device))
            and (dtype is None or v.dtype == dtype)
            for v in (self.lambdas, self.l, self.s, self.b)
        ):
            return self
        return ModelStatistics(
            *(v.to(device=device, dtype=dtype) for v in (self.lambdas, self.l, self.s, self.b))
        )

    def at(self, lam: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(l, s, b) at half log-SNRs ``lam`` (M,), each (M, *S), linear between knots."""
        knots = self.lambdas
        lam = lam.clamp(knots[0], knots[-1])
        hi = torch.searchsorted(knots, lam).clamp(1, knots.shape[0] - 1)
        lo = hi - 1
        w = ((lam - knots[lo]) / (knots[hi] - knots[lo])).reshape(-1, *[1] * len(self.sample_shape))
        return tuple(v[lo] + w * (v[hi] - v[lo]) for v in (self.l, self.s, self.b))  # type: ignore[return-value]

    def save(self, path: str | PathLike[str]) -> Path:
        """Write ``path`` (a ``.safetensors`` file) with the knots, statistics and metadata."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {
            "lambdas": self.lambdas.detach().cpu().contiguous(),
            "l": self.l.detach().cpu().contiguous(),
            "s": self.s.detach().cpu().contiguous(),
            "b": self.b.detach().cpu().contiguous(),
        }
        meta = {"format": _FORMAT, "version": str(_VERSION)}
        save_file(tensors, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | PathLike[str], *, device=None) -> ModelStatistics:
        """Read statistics written by :meth:`save` (safetensors only; nothing is unpickled)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no DPM-Solver-v3 statistics file at {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except Exception as err:  # safetensors raises its own error types
            raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
        if meta.get("format") != _FORMAT:
            raise ValueError(
                f"{path} holds no DPM-Solver-v3 statistics (metadata {json.dumps(meta)})"
            )
        if int(meta.get("version", -1)) > _VERSION:
            raise ValueError(f"{path} has format version {meta['version']} > {_VERSION}")
        missing = {"lambdas", "l", "s", "b"} - tensors.keys()
        if missing:
            raise ValueError(f"{path} lacks the tensors {sorted(missing)}")
        return cls(tensors["lambdas"], tensors["l"], tensors["s"], tensors["b"]).to(device)


def _cumtrapz(y: Tensor, x: Tensor) -> Tensor:
    """Cumulative trapezoid integral of y (M, *S) over x (M,), starting at 0."""
    dx = (x[1:] - x[:-1]).reshape(-1, *[1] * (y.ndim - 1))
    out = torch.cumsum(0.5 * dx * (y[1:] + y[:-1]), dim=0)
    return torch.cat([torch.zeros_like(y[:1]), out])


def _local_grid(points: list[Tensor], per_segment: int) -> tuple[Tensor, list[int]]:
    """A fine grid through sorted lambdas ``points`` and the index of each point in it."""
    pts = torch.stack(points)
    order = torch.argsort(pts)
    sorted_pts = pts[order]
    w = torch.linspace(0, 1, per_segment + 1, dtype=pts.dtype, device=pts.device)[:-1]
    seg = sorted_pts[:-1, None] + w * (sorted_pts[1:, None] - sorted_pts[:-1, None])
    grid = torch.cat([seg.reshape(-1), sorted_pts[-1:]])
    pos = torch.empty_like(order)
    pos[order] = torch.arange(len(points), device=pts.device) * per_segment
    return grid, pos.tolist()


def _taylor_coefficients(lams: list[Tensor], gs: list[Tensor]) -> list[Tensor]:
    """c_1..c_n with g_i - g_0 = sum_k c_k (lam_i - lam_0)^k: the interpolating polynomial."""
    n = len(lams) - 1
    if n == 0:
        return []
    d = torch.stack([lam - lams[0] for lam in lams[1:]])  # (n,)
    vander = torch.stack([d**k for k in range(1, n + 1)], dim=1)  # (n, n)
    rhs = torch.stack([g - gs[0] for g in gs[1:]]).reshape(n, -1)
    sol = torch.linalg.solve(vander.to(rhs.dtype), rhs)
    return [sol[k].reshape(gs[0].shape) for k in range(n)]


@dataclass
class _V3State:
    """Multistep history: lambdas and f-values of earlier evaluations, newest last."""

    lams: tuple[Tensor, ...] = ()
    fs: tuple[Tensor, ...] = ()
    pending: Any = None  # (x_prev, lam_prev, lam_new, past lams, past fs, order) for the corrector


@dataclass(frozen=True)
class DPMSolverV3(StepRule):
    """DPM-Solver-v3 multistep predictor with its corrector, given model statistics.

    One network evaluation per step. The predictor of order ``solver_order`` fits a polynomial
    in lambda through the current and earlier ``g``; with ``corrector=True`` the next step's
    evaluation corrects the state with one more point, raising the order by one (the
    evaluation itself is reused, not repeated). A step into sigma = 0 (outside every EMS) takes
    the exact first-order data-prediction limit ``x1 = alpha1 x0_hat``.

    Attributes:
        statistics: the :class:`ModelStatistics` of the model being sampled.
        solver_order: predictor order, 1, 2 or 3.
        corrector: use the corrector.
        quadrature_points: sub-intervals per lambda segment of the local quadrature grid.

    States are tensors whose per-sample shape matches ``statistics.sample_shape``; times are
    shared by the batch.
    """

    statistics: ModelStatistics
    solver_order: int = 2
    corrector: bool = True
    quadrature_points: int = 64

    stochastic: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.solver_order not in (1, 2, 3):
            raise ValueError(f"`solver_order` must be 1, 2 or 3, got {self.solver_order}")
        if self.quadrature_points < 2:
            raise ValueError(f"`quadrature_points` must be >= 2, got {self.quadrature_points}")

    @property
    def order(self) -> int:  # type: ignore[override]
        """Predictor order, plus one with the corrector (capped at 3)."""
        return min(self.solver_order + int(self.corrector), 3)

    def __str__(self) -> str:
        return f"DPM-Solver-v3({self.solver_order}{'+C' if self.corrector else ''})"

    def init(self, x: Any) -> _V3State:  # noqa: D102
        if not isinstance(x, Tensor):
            raise TypeError("DPMSolverV3 samples tensor states; got a tree")
        if x.shape[1:] != self.statistics.sample_shape:
            raise ValueError(
                f"statistics are for samples of shape {tuple(self.statistics.sample_shape)}, "
                f"got states of shape {tuple(x.shape[1:])}"
            )
        return _V3State()

    # -- the update ---------------------------------------------------------------------------

    def _update(self, x_s: Tensor, lam_s, lam_t, past_lams, past_fs, f_s, p_alpha) -> Tensor:
        """x_t from x_s at lam_s given f at lam_s and at the ``past`` lambdas (any side).

        The integrals are trapezoid sums on a local grid, Richardson-extrapolated from m and
        2m sub-intervals per segment (fourth order in the sub-interval).
        """
        m = self.quadrature_points
        y_coarse = self._y_t(x_s, lam_s, lam_t, past_lams, past_fs, f_s, p_alpha[0], m)
        y_fine = self._y_t(x_s, lam_s, lam_t, past_lams, past_fs, f_s, p_alpha[0], 2 * m)
        return (p_alpha[1] * (4 * y_fine - y_coarse) / 3).to(x_s.dtype)

    def _y_t(self, x_s, lam_s, lam_t, past_lams, past_fs, f_s, alpha_s, m: int) -> Tensor:
        """y_t = x_t / alpha_t by trapezoid sums with ``m`` sub-intervals per segment."""
        stats = self.statistics.to(device=x_s.device, dtype=torch.float64)
        lams = [lam_s, *past_lams]
        grid, pos = _local_grid([*lams, lam_t], m)
        js, jt = pos[0], pos[-1]
        lv, sv, bv = stats.at(grid)
        l_cum, s_cum = _cumtrapz(lv, grid), _cumtrapz(sv, grid)
        l_rel, s_rel = l_cum - l_cum[js], s_cum - s_cum[js]
        b_cum = _cumtrapz(bv * torch.exp(-s_rel), grid)
        b_rel = b_cum - b_cum[js]
        e1 = torch.exp(l_rel + s_rel)

        def between(y: Tensor) -> Tensor:
            c = _cumtrapz(y, grid)
            return c[jt] - c[js]

        # g at the evaluation points, relative to lam_s (g_s = f_s)
        gs = [f_s.double()]
        for j, f_j in zip(pos[1:-1], past_fs, strict=True):
            gs.append(torch.exp(-s_rel[j]) * f_j.double() - b_rel[j])
        cks = _taylor_coefficients(lams, gs)
        dl = (grid - lam_s).reshape(-1, *[1] * (e1.ndim - 1))
        integral = between(e1) * gs[0] + between(e1 * b_rel)
        for k, ck in enumerate(cks, start=1):
            integral = integral + between(e1 * dl**k) * ck
        return torch.exp(-l_rel[jt]) * (x_s.double() / alpha_s - integral)

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        p = model.process
        if t0.ndim > 0 and t0.numel() > 1 and not bool((t0 == t0.flatten()[0]).all()):
            raise ValueError("DPMSolverV3 needs times shared by the batch")
        t0, t1 = t0.flatten()[0], t1.flatten()[0]
        lam0 = p.lambda_(t0)
        a0, s0 = p.alpha(t0), p.sigma(t0)
        pred = model(x, t0)
        l0 = self.statistics.to(device=x.device, dtype=torch.float64).at(lam0.reshape(1))[0][0]
        n_val = s0 * pred.eps.double() - l0 * x.double()  # sigma eps - l x, kept by the corrector
        if self.corrector and state.pending is not None:
            x_prev, lam_prev, p_alpha, past_lams, past_fs, f_prev = state.pending
            x = self._update(
                x_prev, lam_prev, lam0, (lam0, *past_lams), (n_val / a0, *past_fs), f_prev, p_alpha
            )
            # the network output N = sigma eps - l x is kept at the corrected point (as in
            # the paper's code): the evaluation is not repeated
        f0 = n_val / a0
        lams, fs = (*state.lams, lam0), (*state.fs, f0)
        if bool(p.sigma(t1) == 0):
            x0 = ((1 - l0) * x.double() - n_val) / a0  # x - sigma eps with eps from N
            return (p.alpha(t1) * x0).to(x.dtype), _V3State(lams, fs)
        order = min(self.solver_order, len(lams))
        while order > 1 and not bool(torch.isfinite(torch.stack(lams[-order:])).all()):
            order -= 1
        past_lams = tuple(lams[-order:-1][::-1])
        past_fs = tuple(fs[-order:-1][::-1])
        lam1 = p.lambda_(t1)
        p_alpha = (a0, p.alpha(t1))
        x1 = self._update(x, lam0, lam1, past_lams, past_fs, f0, p_alpha)
        keep = self.solver_order
        pending = (x, lam0, p_alpha, past_lams, past_fs, f0)
        return x1, _V3State(lams[-keep:], fs[-keep:], pending)


def estimate_statistics(
    model: Any,
    x_start: Tensor,
    grid: Tensor,
    *,
    rule: StepRule | None = None,
    probes: int = 1,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> ModelStatistics:
    """Estimate DPM-Solver-v3's statistics of ``model`` from calibration trajectories.

    The calibration starts ``x_start`` (N, *S) (prior samples) are carried along ``grid`` by
    ``rule`` (default: DPM-Solver++(3M)); at every grid time the model is evaluated with a
    forward-mode Jacobian-vector product on Rademacher probes to estimate
    ``l = E[diag d(sigma eps)/dx]`` (Hutchinson), then ``f = (sigma eps - l x) / alpha`` is
    differenced along each trajectory and ``f' ~ s f + b`` fitted per dimension by least
    squares (Zheng et al. 2023, eq. 9-10).

    Args:
        model: a Denoiser of a single Gaussian process, differentiable in ``x``.
        x_start: (N, *S) calibration starts at ``grid[0]``; a few hundred to a thousand.
        grid: (K,) decreasing times, best uniform in lambda and fine (K of 100-1000); the
            statistics get one knot per grid time, so the grid must stop before sigma = 0.
        rule: deterministic step rule for the calibration trajectories.
        probes: Rademacher probes per sample for the Jacobian diagonal.
        batch_size: evaluate the model in chunks of this many samples.
        generator: source of the probes.
        progress: show a progress bar.

    Returns:
        The :class:`ModelStatistics` on the knots ``lambda(grid)`` (increasing).
    """
    from .dpm import DPMSolverPP3M
    from .loop import sample

    grid = torch.as_tensor(grid, dtype=torch.float64, device=x_start.device)
    if grid.ndim != 1 or grid.shape[0] < 3:
        raise ValueError(f"`grid` must have shape (K,) with K >= 3, got {tuple(grid.shape)}")
    if not bool((grid[1:] < grid[:-1]).all()):
        raise ValueError("`grid` must be strictly decreasing")
    p = model.process
    if bool((p.sigma(grid) == 0).any()) or bool((p.alpha(grid) == 0).any()):
        raise ValueError("`grid` must stay where alpha > 0 and sigma > 0 (finite lambda)")
    if probes < 1:
        raise ValueError(f"`probes` must be >= 1, got {probes}")
    out = sample(
        model,
        x_start,
        grid,
        rule or DPMSolverPP3M(),
        progress=progress,
        return_trajectory=True,
    )
    n = x_start.shape[0]
    chunk = batch_size or n
    lam = p.lambda_(grid)
    ls, fs = [], []
    for k in tqdm(range(grid.shape[0]), disable=not progress, desc="EMS statistics", leave=False):
        t = grid[k]
        x_k = out.trajectory[k]
        a, s = p.alpha(t), p.sigma(t)
        diag = torch.zeros_like(x_k[0], dtype=torch.float64)
        eps_parts = []
        for i in range(0, n, chunk):
            xi = x_k[i : i + chunk]
            for r in range(probes):
                v = torch.randint(0, 2, xi.shape, generator=generator, device=xi.device)
                v = (2 * v - 1).to(xi.dtype)
                eps, jv = torch.func.jvp(lambda z, t=t: model(z, t).eps, (xi,), (v,))  # type: ignore[misc]
                diag = diag + (v * jv).double().sum(0)
                if r == 0:
                    eps_parts.append(eps.detach().double())
        l_k = s * diag / (n * probes)
        eps_k = torch.cat(eps_parts)
        ls.append(l_k)
        fs.append((s * eps_k - l_k * x_k.double()) / a)
    l_all = torch.stack(ls)  # (K, *S)
    f_all = torch.stack(fs)  # (K, N, *S)
    # derivative in lambda along each trajectory: second-order differences on a non-uniform grid
    df = torch.empty_like(f_all)
    h = (lam[1:] - lam[:-1]).reshape(-1, *[1] * (f_all.ndim - 1))
    hp, hn = h[:-1], h[1:]  # spacing before / after each interior point
    df[1:-1] = (
        -hn / (hp * (hp + hn)) * f_all[:-2]
        + (hn - hp) / (hp * hn) * f_all[1:-1]
        + hp / (hn * (hp + hn)) * f_all[2:]
    )
    df[0] = (f_all[1] - f_all[0]) / h[0]
    df[-1] = (f_all[-1] - f_all[-2]) / h[-1]
    f_mean, df_mean = f_all.mean(1), df.mean(1)
    cov = ((f_all - f_mean[:, None]) * (df - df_mean[:, None])).mean(1)
    var = (f_all - f_mean[:, None]).pow(2).mean(1)
    # ridge: where f does not vary across samples (e.g. Gaussian data) the slope is 0 and b
    # takes the whole drift; any s would fit there, a huge one would overflow exp(S)
    ridge = 1e-10 * (f_all.pow(2).mean(1) + 1e-30)
    s_all = cov / (var + ridge)
    b_all = df_mean - s_all * f_mean
    return ModelStatistics(lam, l_all, s_all, b_all)  # lambda increases along a sampling grid

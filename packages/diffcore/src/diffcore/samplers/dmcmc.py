r"""Denoising MCMC (Kim & Ye 2022, arXiv:2209.14593): MCMC in (data, time), then an ODE solve.

The joint density ``p(x, t) = pi(t) p_t(x)`` (``pi`` uniform on ``[t_lo, t_hi]``) has the data
marginal ``p_0`` after denoising: if ``(x, t) ~ p(x, t)`` then solving the probability-flow ODE
from ``(x, t)`` to the data end gives an exact sample of ``p_0``. DMCMC runs an MCMC chain in the
product space, which stays near the data manifold at moderate noise levels, and then denoises
each chain state from its own time, with far fewer steps than a solve from the prior.

This module implements a Langevin-Gibbs chain (the paper's instance is Denoising Langevin
Gibbs, DLG): alternately

- ``x | t``: Langevin ``x <- x + e sigma_t^2 score(x, t) + sqrt(2 e sigma_t^2) z`` with the
  model's score (step proportional to sigma_t^2, as in annealed Langevin dynamics);
- ``t | x``: Langevin ``t <- t + d g + sqrt(2 d) z'`` with the time score
  ``g = d/dt log p_t(x)``, reflected into ``[t_lo, t_hi]``.

The time score is supplied by the caller (:func:`time_score_from_log_density` differentiates
an exact ``log p_t`` for synthetic data; for a trained model it must be estimated). This
t-update targets the same joint density as the paper's but may differ from its own t-step.
Both updates are unadjusted, so the chain carries an O(step) bias. The final solve uses any
diffcore step rule on per-sample grids uniform in log-SNR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..tree import expand_like
from .base import StepRule
from .dpm import DPMSolverPP2M
from .loop import sample

TimeScore = Callable[[Tensor, Tensor], Tensor]


@dataclass
class DMCMCOutput:
    """What :func:`denoising_mcmc` returns.

    Attributes:
        x: (B, *S) denoised samples.
        x_chain: (B, *S) the last MCMC states (noisy, at times ``t_chain``).
        t_chain: (B,) the times the ODE solves started from.
        nfe: network evaluations spent (MCMC plus ODE), when the model counts them.
    """

    x: Tensor
    x_chain: Tensor
    t_chain: Tensor
    nfe: int | None = None


def time_score_from_log_density(log_density: Callable[[Tensor, Tensor], Tensor]) -> TimeScore:
    """The time score ``d/dt log p_t(x)`` of an exact ``log_density(x, t) -> (B,)`` by autograd."""

    def score(x: Tensor, t: Tensor) -> Tensor:
        with torch.enable_grad():
            tg = t.detach().clone().requires_grad_(True)
            (g,) = torch.autograd.grad(log_density(x.detach(), tg).sum(), tg)
        return g

    return score


def _reflect(t: Tensor, lo: float, hi: float) -> Tensor:
    """Reflect t into [lo, hi] (repeatedly, for steps longer than the interval)."""
    width = hi - lo
    u = torch.remainder(t - lo, 2 * width)
    return lo + torch.where(u > width, 2 * width - u, u)


def _lambda_grid(process: Any, t_start: Tensor, t_end: float, n: int) -> Tensor:
    """(n + 1, B) grids uniform in half log-SNR from each t_start to t_end."""
    l0 = process.lambda_(t_start)
    l1 = process.lambda_(torch.full_like(t_start, t_end))
    ramp = torch.linspace(0, 1, n + 1, dtype=t_start.dtype, device=t_start.device)[:, None]
    grid = process.t_from_lambda(l0[None] + ramp * (l1 - l0)[None])
    grid[0], grid[-1] = t_start, t_end
    return grid


def denoising_mcmc(
    model: Any,
    x: Tensor,
    *,
    time_score: TimeScore,
    t_range: tuple[float, float],
    n_mcmc: int = 100,
    step_x: float = 0.1,
    step_t: float = 1e-3,
    t_init: float | Tensor | None = None,
    rule: StepRule | None = None,
    n_ode: int = 10,
    t_end: float | None = None,
    denoise_final: bool = True,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> DMCMCOutput:
    """Denoising Langevin-Gibbs sampling: MCMC in (x, t), then an ODE solve from each t.

    Args:
        model: a Denoiser (or guidance wrapper) of a Gaussian process, single-tensor states.
        x: (B, *S) chain starts, e.g. ``process.prior_sample(...)`` when ``t_init`` is high.
        time_score: ``time_score(x, t) -> (B,)``, ``d/dt log p_t(x)`` for (B,) times.
        t_range: ``(t_lo, t_hi)``: the support of the uniform time prior; ``t_lo`` > 0 keeps
            the chain off the data end, where the score is singular.
        n_mcmc: Langevin-Gibbs iterations (one network evaluation each).
        step_x: x step in units of sigma_t^2.
        step_t: t step d.
        t_init: start time(s), () or (B,); default ``t_hi``.
        rule: the step rule of the final solve (default ``DPMSolverPP2M()``).
        n_ode: solver steps from each chain time to ``t_end``.
        t_end: where the solve stops before the final denoising step (default: ``t_min`` when
            the log-SNR is finite there, else 1e-3).
        denoise_final: append a last step from ``t_end`` to ``t_min`` (sigma = 0 for VP/RF/EDM).
        generator: every random draw of the chain.
        progress: show a progress bar.

    Returns:
        A :class:`DMCMCOutput`.
    """
    t_lo, t_hi = float(t_range[0]), float(t_range[1])
    process = model.process
    if not (process.t_min <= t_lo < t_hi <= process.t_max):
        raise ValueError(
            f"`t_range` must satisfy t_min <= t_lo < t_hi <= t_max = "
            f"[{process.t_min:g}, {process.t_max:g}], got {t_range}"
        )
    if n_mcmc < 0 or n_ode < 1:
        raise ValueError(f"need n_mcmc >= 0 and n_ode >= 1, got {n_mcmc}, {n_ode}")
    if step_x <= 0 or step_t < 0:
        raise ValueError(f"need step_x > 0 and step_t >= 0, got {step_x}, {step_t}")
    if t_end is None:
        lam = process.lambda_(torch.tensor(float(process.t_min), dtype=torch.float64))
        t_end = float(process.t_min) if bool(torch.isfinite(lam)) else 1e-3
    if not t_end < t_lo:
        raise ValueError(f"`t_end` ({t_end:g}) must lie below t_lo ({t_lo:g})")
    b = x.shape[0]
    tdt = torch.float64 if x.device.type != "mps" else torch.float32
    t = torch.full((b,), t_hi, dtype=tdt, device=x.device)
    if t_init is not None:
        t = torch.as_tensor(t_init, dtype=tdt, device=x.device).expand(b).clone()
    nfe0 = getattr(model, "nfe", None)
    for _ in tqdm(range(n_mcmc), disable=not progress, desc="DMCMC", leave=False):
        score = model(x, t).score
        e = step_x * process.sigma(t) ** 2
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = x + expand_like(e, x) * score + expand_like(torch.sqrt(2 * e), x) * z
        if step_t > 0:
            g = time_score(x, t).to(tdt)
            zt = torch.randn(b, generator=generator, dtype=tdt, device=x.device)
            t = _reflect(t + step_t * g + (2 * step_t) ** 0.5 * zt, t_lo, t_hi)
        if not bool(torch.isfinite(x).all()):
            raise FloatingPointError("non-finite chain state; try a smaller `step_x`")
    grid = _lambda_grid(process, t, t_end, n_ode)
    if denoise_final and t_end > process.t_min:
        grid = torch.cat([grid, torch.full_like(grid[:1], float(process.t_min))])
    out = sample(model, x, grid, rule or DPMSolverPP2M(), generator=generator, progress=False)
    nfe = None if nfe0 is None else model.nfe - nfe0
    return DMCMCOutput(x=out.x, x_chain=x, t_chain=t, nfe=nfe)

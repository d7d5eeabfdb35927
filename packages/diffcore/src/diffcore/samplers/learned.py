"""Learned multistep solvers: per-step coefficients and times fitted to a teacher.

Following S4S (Frankel et al. 2025, "S4S: Solving for a Diffusion Model Solver",
arXiv:2502.17423) and LD3 (Tong et al. 2025, arXiv:2405.15506): a few-step solver's free
parameters (its times, and the weights its multistep update gives past data predictions) are
fitted by gradient descent so that its endpoints from calibration starts match those of an
accurate solve. The update keeps the exponential-integrator form of DPM-Solver++,

    x_{i+1} = (sigma_{i+1} / sigma_i) x_i - alpha_{i+1} expm1(-h_i) sum_j w_ij x0_{i-j},

with ``sum_j w_ij = 1`` (exact whenever the data prediction is constant), starting from
DPM-Solver++(2M)'s weights. A fitted solver is only valid for the model, process and number of
steps it was fitted for; save it with :meth:`LearnedMultistep.state_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .base import StepRule, coef
from .grids import given
from .loop import sample
from .search import default_teacher, grid_parameters

__all__ = ["LearnedMultistep", "fit_multistep"]


@dataclass(frozen=True)
class LearnedMultistep(StepRule):
    """A multistep data-prediction solver with its own grid and per-step weights.

    Attributes:
        grid: (n + 1,) decreasing times the solver was fitted on; sample with exactly this grid.
        weights: (n, k) weights on the past k data predictions (newest first); rows sum to 1.

    Tensor states only (one Gaussian process).
    """

    grid: Tensor
    weights: Tensor

    def __post_init__(self) -> None:
        n = self.grid.shape[0] - 1
        if self.weights.ndim != 2 or self.weights.shape[0] != n:
            raise ValueError(
                f"`weights` must have shape (n, k) = ({n}, k) for a grid of {n} steps, "
                f"got {tuple(self.weights.shape)}"
            )

    @property
    def history(self) -> int:
        """Number k of past data predictions an update uses."""
        return self.weights.shape[1]

    def __str__(self) -> str:
        return f"LearnedMultistep(n={self.weights.shape[0]}, k={self.history})"

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors to save (e.g. with safetensors)."""
        return {"grid": self.grid.detach().cpu(), "weights": self.weights.detach().cpu()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> LearnedMultistep:
        """Inverse of :meth:`state_dict`."""
        missing = {"grid", "weights"} - state.keys()
        if missing:
            raise ValueError(f"a LearnedMultistep state needs the tensors {sorted(missing)}")
        return cls(grid=state["grid"].double(), weights=state["weights"].double())

    def init(self, x: Any) -> tuple[int, tuple[Tensor, ...]]:  # noqa: D102
        if not isinstance(x, Tensor):
            raise TypeError("LearnedMultistep samples tensor states; got a tree")
        return 0, ()

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        i, past = state
        if i >= self.weights.shape[0]:
            raise ValueError(f"{self} was fitted for {self.weights.shape[0]} steps")
        if not bool(torch.isclose(t0.double(), self.grid[i].to(t0.device)).all()):
            raise ValueError(
                f"{self} must be sampled on its own grid (``rule.grid``): step {i} starts at "
                f"t={float(t0.max()):.6g}, not {float(self.grid[i]):.6g}"
            )
        p = model.process
        x0 = model(x, t0).x0
        past = (x0, *past)[: self.history]
        w = self.weights[i].to(device=x.device)
        w = w[: len(past)] / w[: len(past)].sum()  # warm-up: renormalise the available weights
        combo = sum(coef(w[j], x) * past[j] for j in range(len(past)))
        h = p.lambda_(t1) - p.lambda_(t0)
        ratio = torch.where(p.sigma(t1) == 0, torch.zeros_like(h), p.sigma(t1) / p.sigma(t0))
        x1 = coef(ratio, x) * x - coef(p.alpha(t1) * torch.expm1(-h), x) * combo
        return x1, (i + 1, past)


def _dpmpp2m_weights(process: Any, grid: Tensor, k: int) -> Tensor:
    """DPM-Solver++(2M)'s weights on a grid: (1 + 1/(2r), -1/(2r)), first order at the ends."""
    n = grid.shape[0] - 1
    w = torch.zeros(n, k, dtype=torch.float64)
    w[:, 0] = 1.0
    lam = process.lambda_(grid)
    for i in range(1, n):
        h, h_prev = lam[i + 1] - lam[i], lam[i] - lam[i - 1]
        if k > 1 and bool(torch.isfinite(h)) and bool(torch.isfinite(h_prev)):
            w[i, 1] = -h / (2 * h_prev)
            w[i, 0] = 1 - w[i, 1]
    return w


def fit_multistep(
    model: Any,
    x: Tensor,
    init: Tensor,
    *,
    history: int = 3,
    teacher: Tensor | None = None,
    iterations: int = 300,
    lr: float = 0.02,
    progress: bool = False,
) -> LearnedMultistep:
    """Fit a :class:`LearnedMultistep` solver's times and weights to a teacher (S4S / LD3).

    Args:
        model: a Denoiser of one Gaussian process, differentiable in ``x`` and ``t``.
        x: (B, *S) calibration starts, drawn like the real starts but with another seed.
        init: (n + 1,) decreasing starting grid; its first time and a final time of 0 stay.
        history: past data predictions per update (k).
        teacher: endpoints of an accurate solve from ``x``; by default DPM-Solver++(3M) on
            ``init`` refined 64 times.
        iterations: Adam steps on the mean squared endpoint error.
        lr: Adam learning rate.
        progress: show a progress bar.

    Returns:
        The fitted solver; sample with ``sample(model, z, rule.grid, rule)``.
    """
    init = given(init)
    if history < 1:
        raise ValueError(f"`history` must be >= 1, got {history}")
    if teacher is None:
        teacher = default_teacher(model, x, init)
    theta, grid_of = grid_parameters(init)
    w0 = _dpmpp2m_weights(model.process, init, history)
    omega = w0[:, 1:].clone().requires_grad_(True)  # w_i0 = 1 - sum of the others
    opt = torch.optim.Adam([theta, omega], lr=lr)

    def build(th: Tensor, om: Tensor) -> LearnedMultistep:
        grid = grid_of(th)
        weights = torch.cat([1 - om.sum(1, keepdim=True), om], dim=1)
        return LearnedMultistep(grid=grid, weights=weights)

    def loss_of(rule: LearnedMultistep) -> Tensor:
        out = sample(model, x, rule.grid, rule, progress=False, check_finite=False).x
        return (out - teacher).double().pow(2).mean()

    best = (float("inf"), theta.detach().clone(), omega.detach().clone())
    for _ in tqdm(range(iterations), disable=not progress, desc="fitting the solver"):
        opt.zero_grad()
        loss = loss_of(build(theta, omega))
        value = float(loss.detach())
        if value < best[0]:  # NaN compares False
            best = (value, theta.detach().clone(), omega.detach().clone())
        loss.backward()
        for prm in (theta, omega):
            if prm.grad is not None and not bool(torch.isfinite(prm.grad).all()):
                prm.grad.zero_()
        opt.step()
    with torch.no_grad():
        final = build(theta.detach(), omega.detach())
        if float(loss_of(final)) < best[0]:
            return final
    return build(best[1], best[2])

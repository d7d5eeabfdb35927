"""Time grids fitted to a model: dynamic programming (GITS) and gradient descent (LD3).

``searched_grid``: a dynamic programme over the points of a fine grid.

Following GITS (Chen et al. 2024, "On the Trajectory Regularity of ODE-based Diffusion
Sampling", arXiv:2405.11326): a few calibration samples are solved accurately along a fine grid
(the teacher); the cost of jumping from fine point i to fine point j is the error of one
first-order step (DPM-Solver++(1) = DDIM) started on the teacher at i, measured against the
teacher at j; and the n-step path from the first to the last fine point with the least total
cost is found by dynamic programming. Each fine point needs one network evaluation, so the
search costs as many NFE as the fine grid has points (plus the teacher's solve).

``learned_grid``: following LD3 (Tong et al. 2025, "Learning to Discretize Denoising Diffusion
ODEs", arXiv:2405.15506), the times of an n-step grid are parameters, trained by gradient
descent so that the sampler's endpoints from calibration starts match a teacher's endpoints
(differentiating through the sampler with respect to the times). Any deterministic step rule
works, so the grid is fitted for the rule it will be used with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..tree import Tree, leaves, tree_map
from .dpm import DPMSolverPP3M, _first_order_pp
from .grids import given
from .loop import sample

_TEACHER_SUBSTEPS = 8  # teacher steps per fine interval (DPM-Solver++(3M))


def searched_grid(
    model: Any,
    x: Tree,
    n: int,
    fine: Tensor,
    *,
    teacher_substeps: int = _TEACHER_SUBSTEPS,
    progress: bool = False,
) -> Tensor:
    """An ``n``-step grid chosen among the points of ``fine`` (first and last kept).

    Args:
        model: a Denoiser (or guidance wrapper) of the model to be sampled.
        x: calibration start states (B, *S) or a tree, drawn like the real starts.
        n: number of steps of the returned grid.
        fine: (M + 1,) decreasing candidate times, e.g. ``append_zero(uniform_lambda(p, 99))``.
        teacher_substeps: DPM-Solver++(3M) steps per fine interval for the teacher.
        progress: show progress bars.

    Returns:
        (n + 1,) float64 grid, a subsequence of ``fine``.
    """
    fine = given(fine)
    m = len(fine) - 1
    if not 1 <= n <= m:
        raise ValueError(f"`n` must lie in [1, {m}] for a fine grid of {m} steps, got {n}")
    # teacher: refine every fine interval, solve once, keep the states at the fine points
    pieces = [
        torch.linspace(
            float(fine[i]), float(fine[i + 1]), teacher_substeps + 1, dtype=torch.float64
        )[:-1]
        for i in range(m)
    ]
    refined = torch.cat([*pieces, fine[-1:]])
    traj = sample(model, x, refined, DPMSolverPP3M(), progress=progress, return_trajectory=True)
    teacher = traj.trajectory[::teacher_substeps]
    process = model.process
    # cost[i, j]: squared error of one first-order step i -> j from the teacher at i
    cost = torch.full((m + 1, m + 1), float("inf"), dtype=torch.float64)
    for i in range(m):
        x0 = model(teacher[i], fine[i]).x0
        for j in range(i + 1, m + 1):
            t0, t1 = fine[i].to(torch.float64), fine[j].to(torch.float64)
            jump = tree_map(
                lambda xi, x0i, p, a=t0, b=t1: _first_order_pp(xi, x0i, p, a, b),
                teacher[i],
                x0,
                process,
            )
            err = sum(
                float((a - b).double().pow(2).mean())
                for a, b in zip(leaves(jump), leaves(teacher[j]), strict=True)
            )
            cost[i, j] = err
    # dynamic programme over (steps used, fine point)
    best = torch.full((n + 1, m + 1), float("inf"), dtype=torch.float64)
    back = torch.zeros((n + 1, m + 1), dtype=torch.long)
    best[0, 0] = 0.0
    for k in range(1, n + 1):
        totals = best[k - 1][:, None] + cost  # (from i, to j)
        best[k], back[k] = totals.min(dim=0)
    path = [m]
    for k in range(n, 0, -1):
        path.append(int(back[k, path[-1]]))
    return fine[list(reversed(path))].to(torch.float64)


def default_teacher(model: Any, x: Tree, init: Tensor) -> Tree:
    """Endpoints of DPM-Solver++(3M) from ``x`` on ``init`` refined 64 times (a fitting target)."""
    pieces = [
        torch.linspace(float(init[i]), float(init[i + 1]), 65, dtype=torch.float64)[:-1]
        for i in range(len(init) - 1)
    ]
    fine = torch.cat([*pieces, init[-1:]])
    return sample(model, x, fine, DPMSolverPP3M(), progress=False).x


def grid_parameters(init: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """Trainable logits ``theta`` of ``init``'s free times, and the map back to a grid.

    ``t_k = t_0 prod_{j <= k} sigmoid(theta_j)`` keeps the grid strictly decreasing and
    positive; the first time, and a final time of 0, stay fixed.
    """
    ends_at_zero = bool(init[-1] == 0)
    free = init[1:-1] if ends_at_zero else init[1:]
    ratios = free / torch.cat([init[:1], free[:-1]])
    theta = torch.logit(ratios.clamp(1e-6, 1 - 1e-6)).detach().requires_grad_(True)

    def grid_of(th: Tensor) -> Tensor:
        times = init[0] * torch.cumprod(torch.sigmoid(th), 0)
        return torch.cat([init[:1], times] + ([init[-1:]] if ends_at_zero else []))

    return theta, grid_of


def learned_grid(
    model: Any,
    rule: Any,
    x: Tree,
    init: Tensor,
    *,
    teacher: Tree | None = None,
    iterations: int = 200,
    lr: float = 0.05,
    progress: bool = False,
) -> Tensor:
    """The grid with ``init``'s length and end points that ``rule`` follows best (LD3).

    The interior times are ``t_k = t_0 prod_{j <= k} sigmoid(theta_j)`` (strictly decreasing,
    positive); a final time of 0 in ``init`` stays fixed, so the grid still ends at sigma = 0.
    ``theta`` starts at ``init`` and is fitted by Adam on the mean squared error between the
    endpoints of ``sample(model, x, grid, rule)`` and ``teacher``.

    Args:
        model: a Denoiser (or guidance wrapper) differentiable in ``x`` and ``t``.
        rule: the deterministic step rule the grid is for.
        x: calibration starts (B, *S) or a tree, drawn like the real starts but with another
            seed than the evaluation.
        init: (n + 1,) decreasing starting grid, e.g. ``uniform_t(process, n)``.
        teacher: endpoints of an accurate solve from ``x``; by default DPM-Solver++(3M) on
            ``init`` refined 64 times.
        iterations: Adam steps.
        lr: Adam learning rate on ``theta``.
        progress: show a progress bar.

    Returns:
        (n + 1,) float64 grid with the first (and a zero last) time of ``init``.
    """
    init = given(init)
    if getattr(rule, "stochastic", False):
        raise ValueError(f"learned_grid fits deterministic rules; {rule} is stochastic")
    if teacher is None:
        teacher = default_teacher(model, x, init)
    theta, grid_of = grid_parameters(init)
    opt = torch.optim.Adam([theta], lr=lr)

    def loss_of(th: Tensor) -> Tensor:
        out = sample(model, x, grid_of(th), rule, progress=False, check_finite=False).x
        return sum(
            (a - b).double().pow(2).mean()
            for a, b in zip(leaves(out), leaves(teacher), strict=True)
        )

    best_loss, best_theta = float("inf"), theta.detach().clone()
    for _ in tqdm(range(iterations), disable=not progress, desc="learning the grid"):
        opt.zero_grad()
        loss = loss_of(theta)
        value = float(loss.detach())
        if value < best_loss:  # NaN compares False
            best_loss, best_theta = value, theta.detach().clone()
        loss.backward()
        if theta.grad is not None and not bool(torch.isfinite(theta.grad).all()):
            theta.grad.zero_()
        opt.step()
    with torch.no_grad():
        final = float(loss_of(theta))
    chosen = theta.detach() if final < best_loss else best_theta
    return grid_of(chosen).detach()

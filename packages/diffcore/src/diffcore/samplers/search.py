"""Searched time grids: choose the steps by dynamic programming against a teacher trajectory.

Following GITS (Chen et al. 2024, "On the Trajectory Regularity of ODE-based Diffusion
Sampling", arXiv:2405.11326): a few calibration samples are solved accurately along a fine grid
(the teacher); the cost of jumping from fine point i to fine point j is the error of one
first-order step (DPM-Solver++(1) = DDIM) started on the teacher at i, measured against the
teacher at j; and the n-step path from the first to the last fine point with the least total
cost is found by dynamic programming. Each fine point needs one network evaluation, so the
search costs as many NFE as the fine grid has points (plus the teacher's solve).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

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

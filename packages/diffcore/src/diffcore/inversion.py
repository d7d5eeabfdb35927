"""Inversion: map data to the noise that a deterministic sampler turns back into it.

DDIM inversion (Song et al. 2021, arXiv:2010.02502, sec. 4.3; Dhariwal & Nichol 2021), its
higher-order versions with DPM-Solver / DPM-Solver++ (Lu et al. 2022) and rectified-flow
inversion with RF-Solver (Wang et al. 2024, arXiv:2411.04746) are all the same thing here: the
one :func:`~diffcore.samplers.sample` loop run with a deterministic rule on an increasing grid.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .samplers import SampleOutput, StepRule, sample
from .tree import Tree


def invert(
    model: Any,
    x0: Tree,
    grid: Tensor,
    rule: StepRule,
    *,
    progress: bool = True,
    return_trajectory: bool = False,
) -> SampleOutput:
    """Integrate the probability-flow ODE from data to noise.

    Args:
        model: a Denoiser (or guidance wrapper without randomness).
        x0: data (B, *S) or a tree, taken to sit at time ``min(grid)``.
        grid: (n + 1,) sampling grid in either order; inversion runs it increasing.
        rule: a deterministic step rule (DDIM(), DPMSolverPP2M(), Midpoint() for RF-Solver...).
        progress: show a progress bar.
        return_trajectory: keep the state after every step.

    Returns:
        The :class:`~diffcore.samplers.SampleOutput` whose ``x`` is the latent at ``max(grid)``;
        ``sample(model, out.x, grid_decreasing, rule)`` reconstructs ``x0`` up to the solver's
        error.

    Raises:
        ValueError: for a stochastic rule.
    """
    grid = torch.as_tensor(grid)
    ascending = grid if bool((grid[1:] > grid[:-1]).all()) else grid.flip(0)
    return sample(
        model, x0, ascending, rule, progress=progress, return_trajectory=return_trajectory
    )

"""The one sampling loop: grids, step rules, progress bars, callbacks and trajectories."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..tree import Tree, all_finite, batch_size, first_leaf, leaves, tree_map
from .base import StepRule


@dataclass
class SampleOutput:
    """What :func:`sample` returns.

    Attributes:
        x: the final state (a tree like the input).
        trajectory: states after every step, ``[x_start, x_1, ..., x_n]`` when requested.
        times: (n + 1,) or (n + 1, B) the grid that was followed.
        nfe: network evaluations spent (read from the model when it counts them).
    """

    x: Tree
    times: Tensor
    nfe: int | None = None
    trajectory: list[Tree] = field(default_factory=list)


def sample(
    model: Any,
    x: Tree,
    grid: Tensor,
    rule: StepRule,
    *,
    generator: torch.Generator | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = True,
    return_trajectory: bool = False,
    check_finite: bool = True,
) -> SampleOutput:
    """Integrate from ``x`` at ``grid[0]`` to ``grid[-1]`` with ``rule``.

    Args:
        model: a :class:`~diffcore.predictions.Denoiser` (or guidance wrapper): ``model(x, t)``
            returns a :class:`~diffcore.predictions.Prediction`; ``model.process`` is the
            process (tree) used for per-leaf coefficients.
        x: the start state, e.g. ``process.prior_sample(...)``; a tensor or a tuple/dict tree.
        grid: (n + 1,) decreasing times shared by the batch, or (n + 1, B) per-sample times.
            An increasing grid runs a deterministic rule forward in time: inversion (see
            :func:`diffcore.inversion.invert`).
        rule: the step rule (``Euler()``, ``DPMSolverPP2M()``, ...).
        generator: source of every random number drawn by stochastic rules.
        callback: called after each step with a dict with keys ``i``, ``t0``, ``t1``, ``x``.
        progress: show a tqdm progress bar.
        return_trajectory: keep the state after every step.
        check_finite: raise ``FloatingPointError`` as soon as a step produces NaN/inf.

    Returns:
        A :class:`SampleOutput`. The state keeps the dtype and device of ``x``.
    """
    leaf = first_leaf(x)
    grid = torch.as_tensor(grid)
    if grid.ndim not in (1, 2) or grid.shape[0] < 2:
        raise ValueError(f"`grid` must have shape (n + 1,) or (n + 1, B), got {tuple(grid.shape)}")
    if grid.ndim == 2 and grid.shape[1] != batch_size(x):
        raise ValueError(
            f"per-sample grid has {grid.shape[1]} columns for a batch of {batch_size(x)}"
        )
    decreasing = bool((grid[1:] < grid[:-1]).all())
    if not decreasing and not bool((grid[1:] > grid[:-1]).all()):
        raise ValueError("`grid` must be strictly monotone in time (decreasing to sample)")
    if not decreasing and getattr(rule, "stochastic", False):
        raise ValueError(
            f"an increasing grid integrates the probability-flow ODE forward (inversion); "
            f"{rule} is stochastic, use a deterministic rule such as DDIM() or DPMSolverPP2M()"
        )
    if leaf.device.type == "mps":  # no float64 there
        grid = grid.to(device=leaf.device, dtype=torch.float32)
    else:
        grid = grid.to(device=leaf.device, dtype=torch.float64)
    process = model.process
    x = tree_map(lambda xi, p: p.project(xi), x, process)
    nfe0 = getattr(model, "nfe", None)
    state = rule.init(x)
    trajectory = [x] if return_trajectory else []
    n = grid.shape[0] - 1
    times = list(grid.unbind(0))  # one tensor per grid time, shared by consecutive steps
    for p in leaves(process):
        if hasattr(p, "prefetch"):  # schedules computed once for the whole grid
            p.prefetch(times)
    for i in tqdm(range(n), disable=not progress, desc=f"sampling ({rule})", leave=False):
        t0, t1 = times[i], times[i + 1]
        x, state = rule.step(model, x, t0, t1, state, generator=generator)
        x = tree_map(lambda xi, p: p.project(xi), x, process)
        if check_finite and not all_finite(x):
            raise FloatingPointError(
                f"non-finite state after step {i} (t={float(t0.max()):.4g} -> "
                f"{float(t1.max()):.4g}) with {rule}; try float64, more steps or a grid ending "
                "before sigma = 0"
            )
        if return_trajectory:
            trajectory.append(x)
        if callback is not None:
            callback({"i": i, "t0": t0, "t1": t1, "x": x})
    nfe = None if nfe0 is None else model.nfe - nfe0
    return SampleOutput(x=x, times=grid, nfe=nfe, trajectory=trajectory)

"""Reflow pairs for straightening a trained flow.

Reflow (Liu et al. 2022, arXiv:2209.03003, sec. 2.3): couple noise with the samples a trained
flow maps it to, and retrain on the straightened pairs.
"""

from __future__ import annotations

from typing import Any

import torch

from ..samplers import Euler, sample, uniform_t
from ..tree import Tree


def reflow_pairs(
    model: Any,
    noise: Tree,
    *,
    steps: int = 100,
    rule: Any = None,
    grid: torch.Tensor | None = None,
    progress: bool = False,
) -> tuple[Tree, Tree]:
    """Generate (x0, x1) pairs for reflow: ``x0 = ODE(x1)`` from noise ``x1``.

    Args:
        model: a Denoiser of the current flow.
        noise: the source samples x1 (a tensor or tree), e.g. ``process.prior_sample``.
        steps: Euler steps of the deterministic solve (when ``grid`` is not given).
        rule: step rule (default Euler).
        grid: time grid (default ``steps`` uniform steps).
        progress: show a progress bar.

    Returns:
        (x0, x1): train the next flow with ``FlowMatching(...).loss(net, x0, noise=x1)``.
    """
    process = model.process
    if grid is None:
        grid = uniform_t(process, steps)
    out = sample(model, noise, grid, rule or Euler(), progress=progress)
    return out.x, noise

"""Draw many samples in seeded micro-batches, split over ranks: the same set on any number.

`sample_n` is `sample` from the prior, run through `diffcore.distributed.split_sample`: the
``n`` samples are cut into micro-batches of a fixed size, micro-batch ``k`` draws its prior and
every stochastic step from one generator seeded with ``(seed, k)``, and ranks take
micro-batches round-robin before the results are gathered in order. One process, 2 GPUs or
64 GPUs therefore return the same samples.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import torch
from torch import Tensor

from ..distributed import split_sample
from ..tree import Tree, first_leaf, tree_map
from .base import StepRule
from .loop import sample

__all__ = ["sample_n"]


def sample_n(
    model: Any,
    like: Tree,
    grid: Tensor,
    rule: StepRule,
    n: int,
    *,
    seed: int,
    micro_batch: int = 64,
    gather: Literal["rank0", "all", "none"] = "rank0",
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    check_finite: bool = True,
) -> Tree | None:
    """Draw `n` samples from the prior of ``model.process`` and run `sample` on them.

    Args:
        model: a :class:`~diffcore.predictions.Denoiser` (or guidance wrapper).
        like: a state whose leaves give the per-sample shape (all but the first dimension),
            dtype and device, e.g. ``torch.empty(1, 3, 32, 32, device="cuda")``; its batch
            size is ignored.
        grid: (m + 1,) decreasing times shared by every sample.
        rule: the step rule.
        n: number of samples.
        seed: seeds micro-batch ``k``'s generator with ``(seed, k)``.
        micro_batch: samples per `sample` call; the result depends on it (not on the ranks).
        gather: ``"rank0"`` (default), ``"all"`` or ``"none"``; see
            `diffcore.distributed.split_sample`.
        out_dir: also write each micro-batch to ``out_dir/part-{k:06d}.safetensors``.
        progress: progress bar over micro-batches on rank 0.
        check_finite: passed to `sample`.

    Returns:
        (n, ...) samples as a tree like `like` (on rank 0, or every rank with
        ``gather="all"``), else None. Runs under the caller's grad mode: wrap in
        ``torch.no_grad()`` unless guidance needs gradients.

    >>> from diffcore.processes import LinearVP
    >>> from diffcore.samplers import EulerMaruyama, uniform_t
    >>> from diffcore.testing import GaussianData
    >>> data = GaussianData.create(torch.zeros(2), torch.ones(2))
    >>> model = data.denoiser(LinearVP())
    >>> grid = uniform_t(LinearVP(), 10, t_end=1e-3)
    >>> sample_n(model, torch.empty(1, 2), grid, EulerMaruyama(), 5, seed=0, micro_batch=2).shape
    torch.Size([5, 2])
    """
    grid = torch.as_tensor(grid)
    if grid.ndim != 1:
        raise ValueError(
            f"`grid` must have shape (m + 1,) for sample_n (shared by all samples), got "
            f"{tuple(grid.shape)}."
        )

    def draw(count: int, generator: torch.Generator) -> Tree:
        def prior(leaf: Tensor, process: Any) -> Tensor:
            template = torch.empty((count, *leaf.shape[1:]), dtype=leaf.dtype, device=leaf.device)
            return process.prior_sample(template, generator=generator)

        x = tree_map(prior, like, model.process)
        out = sample(
            model, x, grid, rule, generator=generator, progress=False, check_finite=check_finite
        )
        return out.x

    return split_sample(
        draw,
        n,
        seed=seed,
        micro_batch=micro_batch,
        device=first_leaf(like).device,
        gather=gather,
        out_dir=out_dir,
        progress=progress,
    )

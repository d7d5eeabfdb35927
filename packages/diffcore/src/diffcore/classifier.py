"""Diffusion Classifier: zero-shot classification by the lowest denoising error.

Li et al. 2023 (arXiv:2303.16203), with a class-conditional diffusion model.

For each candidate class c, ``err_c(x) = E_{t, eps} ||eps - eps_theta(x_t, t, c)||^2`` is
estimated with the same (t, eps) draws for every class (paired differences have far lower
variance); the prediction is the argmin. Candidates are pruned in stages (their Algorithm 1,
"adaptive"): after each stage only the classes with the lowest errors so far are evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .objectives.time_samplers import UniformTime


@dataclass
class ClassifierOutput:
    """Labels (B,) and mean denoising errors (B, C); inf for classes pruned before the end."""

    labels: Tensor
    errors: Tensor


def diffusion_classify(
    denoisers: Sequence[Any],
    x: Tensor,
    *,
    stages: Sequence[tuple[int, int]] | None = None,
    n_trials: int = 64,
    time_sampler: Any = None,
    generator: torch.Generator | None = None,
) -> ClassifierOutput:
    """Classify ``x`` (B, *S) among ``len(denoisers)`` classes.

    Args:
        denoisers: one Denoiser per class (e.g. the same net with ``cond=c``), sharing a process.
        x: (B, *S) inputs to classify.
        stages: ``[(trials, keep), ...]``: run ``trials`` more (t, eps) draws on the surviving
            classes, then keep the ``keep`` best per sample. Default: one stage of ``n_trials``
            over all classes.
        n_trials: trials of the default single stage.
        time_sampler: distribution of t (default uniform on the process's range).
        generator: draws t and eps.

    Returns:
        A :class:`ClassifierOutput`.
    """
    n_classes = len(denoisers)
    if n_classes < 2:
        raise ValueError(f"need at least two class denoisers, got {n_classes}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("`x` contains NaN or inf")
    stages = list(stages) if stages is not None else [(n_trials, n_classes)]
    for trials, keep in stages:
        if trials < 1 or not 1 <= keep <= n_classes:
            raise ValueError(
                f"each stage needs trials >= 1 and 1 <= keep <= {n_classes}, got {(trials, keep)}"
            )
    process = denoisers[0].process
    sampler = time_sampler or UniformTime()
    b = x.shape[0]
    total = torch.zeros(b, n_classes, dtype=torch.float64, device=x.device)
    count = 0
    alive = torch.ones(b, n_classes, dtype=torch.bool, device=x.device)
    for trials, keep in stages:
        for _ in range(trials):
            t = sampler.sample(
                b, process, generator=generator, device=x.device, dtype=torch.float64
            )
            eps = process.noise_like(x, generator=generator)
            x_t = process.marginal(x, t, eps)
            for c, model in enumerate(denoisers):
                rows = alive[:, c].nonzero().squeeze(1)
                if rows.numel() == 0:
                    continue
                pred = model(x_t[rows], t[rows]).eps
                err = (pred - eps[rows]).pow(2).flatten(1).mean(1)
                total[rows, c] += err.to(torch.float64)
            count += 1
        mean = torch.where(alive, total / count, torch.full_like(total, float("inf")))
        cutoff = mean.topk(keep, dim=1, largest=False).values[:, -1:]
        alive = alive & (mean <= cutoff)
    errors = torch.where(alive, total / count, torch.full_like(total, float("inf")))
    return ClassifierOutput(labels=errors.argmin(dim=1), errors=errors)

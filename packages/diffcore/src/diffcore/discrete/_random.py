"""Random draws shared by the discrete samplers: categorical and Gumbel noise from a generator."""

from __future__ import annotations

import torch
from torch import Tensor

_U_GUARD = 1e-20  # keeps uniforms off 0 and 1, where -log(-log u) is infinite


def categorical(
    probs: Tensor, generator: torch.Generator | None = None, num_samples: int | None = None
) -> Tensor:
    """Draws from each row of ``probs`` (..., K), by inverting the CDF in float64.

    Rows need not be normalised; zero-probability entries are never drawn. One uniform per draw
    (not K Gumbels), in float64 so that small probabilities are not lost to rounding (the
    float32 Gumbel issue noted by Zheng et al. 2024, arXiv:2409.02908). The CDF is built once,
    so ``num_samples`` draws cost O(K + num_samples log K) per row.

    Returns:
        (...) int64 indices into the last axis, or (num_samples, ...) when ``num_samples``.
    """
    cdf = probs.to(torch.float64).cumsum(-1)
    n = 1 if num_samples is None else num_samples
    shape = (*cdf.shape[:-1], n)
    u = 1.0 - torch.rand(shape, generator=generator, device=cdf.device, dtype=cdf.dtype)
    idx = torch.searchsorted(cdf, (u * cdf[..., -1:]).contiguous())  # first cdf >= u * total
    idx = idx.clamp_max(probs.shape[-1] - 1)
    return idx[..., 0] if num_samples is None else idx.movedim(-1, 0)


def gumbel_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard Gumbel noise with ``x``'s shape, dtype and device (drawn in float64)."""
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float64)
    u = u.clamp(_U_GUARD, 1.0 - 1e-16)
    return (-torch.log(-torch.log(u))).to(x.dtype)

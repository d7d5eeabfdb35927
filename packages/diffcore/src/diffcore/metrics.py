"""Sample-based distances between point sets.

Sample-based distances between point sets: MMD, sliced and exact 1-D Wasserstein, energy
distance. Inputs are (N, D) and (M, D) tensors; results are 0-dim tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"expected point sets (N, D) and (M, D), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(y).all())):
        raise ValueError("point sets contain NaN or inf")


def mmd(
    x: Tensor, y: Tensor, *, kernel: str = "rbf", bandwidths: Sequence[float] | None = None
) -> Tensor:
    """Squared maximum mean discrepancy, unbiased U-statistic (Gretton et al. 2012, eq. 3).

    Args:
        x: (N, D) first sample.
        y: (M, D) second sample.
        bandwidths: RBF bandwidths h; default from the median heuristic (below).
        kernel: ``"rbf"`` (sum of Gaussians ``exp(-|a-b|^2 / (2 h^2))`` over ``bandwidths``,
            default: the median pairwise distance times 0.5, 1, 2) or ``"energy"``
            (``-|a - b|``, which makes MMD the energy distance).

    Returns:
        () MMD^2 estimate (can be slightly negative for equal distributions).
    """
    _check_pair(x, y)
    xy = torch.cat([x, y])
    d2 = torch.cdist(xy, xy).pow(2)
    if kernel == "rbf":
        if bandwidths is None:
            med = d2[d2 > 0].median().sqrt() if bool((d2 > 0).any()) else d2.new_tensor(1.0)
            bandwidths = [float(med) * f for f in (0.5, 1.0, 2.0)]
        k = torch.zeros_like(d2)
        for h in bandwidths:
            k = k + torch.exp(-d2 / (2 * h**2))
    elif kernel == "energy":
        k = -d2.clamp_min(0).sqrt()
    else:
        raise ValueError(f"unknown kernel {kernel!r}; expected 'rbf' or 'energy'")
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sxx + syy - 2 * kxy.mean()


def energy_distance(x: Tensor, y: Tensor) -> Tensor:
    """Energy distance ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` (Szekely & Rizzo 2013)."""
    return mmd(x, y, kernel="energy")


def wasserstein_1d(x: Tensor, y: Tensor, p: float = 1.0) -> Tensor:
    """Exact p-Wasserstein distance between two 1-D empirical measures of equal size (N,)."""
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"expected two (N,) samples of equal size, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    return (torch.sort(x).values - torch.sort(y).values).abs().pow(p).mean().pow(1 / p)


def sliced_wasserstein(
    x: Tensor,
    y: Tensor,
    *,
    n_projections: int = 256,
    p: float = 2.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sliced p-Wasserstein distance between two point sets.

    Sliced p-Wasserstein distance (Bonneel et al. 2015): the p-mean over random directions of
    exact 1-D distances. Sets of unequal size are compared through their quantile functions.

    Args:
        x: (N, D) first sample.
        y: (M, D) second sample.
        p: order of the Wasserstein distance.
        n_projections: random unit directions.
        generator: draws the directions.
    """
    _check_pair(x, y)
    theta = torch.randn(x.shape[1], n_projections, generator=generator, dtype=torch.float64)
    theta = (theta / theta.norm(dim=0, keepdim=True)).to(x.device, x.dtype)
    px, py = torch.sort(x @ theta, dim=0).values, torch.sort(y @ theta, dim=0).values
    q = torch.linspace(0, 1, max(len(x), len(y)), dtype=x.dtype, device=x.device)
    qx = torch.quantile(px, q, dim=0) if len(x) != len(q) else px
    qy = torch.quantile(py, q, dim=0) if len(y) != len(q) else py
    return (qx - qy).abs().pow(p).mean().pow(1 / p)

"""MMD between sets of graph descriptors, as in GraphRNN and GDSS (evaluation/mmd.py).

Each graph is summarised by a vector (a histogram or mean orbit counts). The squared MMD is the
biased (V-statistic) estimate that GraphRNN introduced and GDSS reports:

    MMD^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y),

means over all pairs, the diagonal included, so identical sets give exactly 0. Histograms are
first normalised to sum 1 and zero-padded to a common length. Kernels (sigma: bandwidth):

- ``"gaussian_emd"``: exp(-EMD(x, y)^2 / (2 sigma^2)), EMD the earth mover's distance between
  the two histograms with ground distance |i - j| / ``distance_scaling``. In one dimension and
  for equal masses it is the L1 distance of the cumulative sums (what pyemd computes for GDSS).
- ``"gaussian"``: exp(-|x - y|_2^2 / (2 sigma^2)).
- ``"gaussian_tv"``: exp(-TV(x, y)^2 / (2 sigma^2)), TV = |x - y|_1 / 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

KERNELS = ("gaussian_emd", "gaussian", "gaussian_tv")


def _stack(samples: Sequence[Tensor], length: int) -> Tensor:
    out = torch.zeros(len(samples), length, dtype=torch.float64)
    for i, s in enumerate(samples):
        out[i, : s.shape[0]] = s.to(torch.float64)
    return out


def kernel_matrix(
    x: Tensor,
    y: Tensor,
    *,
    kernel: str = "gaussian_emd",
    sigma: float = 1.0,
    distance_scaling: float = 1.0,
) -> Tensor:
    """Kernel values between two sets of descriptors.

    Args:
        x: (n, L) descriptors.
        y: (m, L) descriptors.
        kernel: one of ``"gaussian_emd"``, ``"gaussian"``, ``"gaussian_tv"`` (module docstring).
        sigma: kernel bandwidth.
        distance_scaling: bins per unit of ground distance (``"gaussian_emd"`` only).

    Returns:
        (n, m) float64.
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {', '.join(KERNELS)}")
    if sigma <= 0:
        raise ValueError(f"`sigma` must be positive, got {sigma}")
    x, y = x.double(), y.double()
    if kernel == "gaussian_emd":
        d = torch.cdist(x.cumsum(-1), y.cumsum(-1), p=1) / distance_scaling
    elif kernel == "gaussian":
        d = torch.cdist(x, y, p=2)
    else:
        d = torch.cdist(x, y, p=1) / 2
    return torch.exp(-(d**2) / (2 * sigma**2))


def mmd_squared(
    x: Sequence[Tensor],
    y: Sequence[Tensor],
    *,
    kernel: str = "gaussian_emd",
    sigma: float = 1.0,
    distance_scaling: float = 1.0,
    normalize: bool = True,
) -> float:
    """Biased squared MMD between two sets of 1-D descriptors (GraphRNN/GDSS ``compute_mmd``).

    Args:
        x: n descriptors, 1-D tensors of any lengths (zero-padded to a common length).
        y: m descriptors.
        kernel: ``"gaussian_emd"``, ``"gaussian"`` or ``"gaussian_tv"``.
        sigma: kernel bandwidth.
        distance_scaling: see :func:`kernel_matrix`.
        normalize: divide each descriptor by its sum first (histograms -> pmfs; GDSS
            ``is_hist=True``); False for orbit counts.

    Returns:
        MMD^2 >= 0 (up to rounding), exactly 0 when the two sets are equal.
    """
    if len(x) == 0 or len(y) == 0:
        raise ValueError(f"both sets need at least one descriptor, got {len(x)} and {len(y)}")
    for s in (*x, *y):
        if s.ndim != 1:
            raise ValueError(f"descriptors must be 1-D, got shape {tuple(s.shape)}")
    length = max(s.shape[0] for s in (*x, *y))
    xs, ys = _stack(x, length), _stack(y, length)
    if not (bool(torch.isfinite(xs).all()) and bool(torch.isfinite(ys).all())):
        raise ValueError("descriptors contain NaN or inf")
    if normalize:
        for name, s in (("x", xs), ("y", ys)):
            sums = s.sum(-1, keepdim=True)
            if bool((sums <= 0).any()):
                raise ValueError(f"a histogram in `{name}` sums to 0 and cannot be normalised")
        xs, ys = xs / xs.sum(-1, keepdim=True), ys / ys.sum(-1, keepdim=True)

    def k(a: Tensor, b: Tensor) -> Tensor:
        return kernel_matrix(a, b, kernel=kernel, sigma=sigma, distance_scaling=distance_scaling)

    return float(k(xs, xs).mean() + k(ys, ys).mean() - 2 * k(xs, ys).mean())

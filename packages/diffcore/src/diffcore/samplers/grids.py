"""Time grids: decreasing times from the prior end to the data end, (n + 1,) float64.

Grids are built from a reference process (for a product process, its first leaf) and may then be
used with any step rule. All returned tensors are float64 on ``device``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..processes.gaussian import GaussianProcess


def _check_n(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` (number of steps) must be a positive int, got {n!r}")


def _ends(process, t_start, t_end) -> tuple[float, float]:
    t_start = process.t_max if t_start is None else float(t_start)
    t_end = process.t_min if t_end is None else float(t_end)
    if not t_start > t_end:
        raise ValueError(f"grid must decrease: t_start={t_start:g} <= t_end={t_end:g}")
    return t_start, t_end


def uniform_t(
    process, n: int, *, t_start: float | None = None, t_end: float | None = None, device=None
) -> Tensor:
    """``n`` equal steps in t from ``t_start`` (default ``t_max``) to ``t_end`` (``t_min``).

    >>> from diffcore.processes import RectifiedFlow
    >>> uniform_t(RectifiedFlow(), 4)
    tensor([1.0000, 0.7500, 0.5000, 0.2500, 0.0000], dtype=torch.float64)
    """
    _check_n(n)
    t_start, t_end = _ends(process, t_start, t_end)
    return torch.linspace(t_start, t_end, n + 1, dtype=torch.float64, device=device)


def quadratic_t(
    process, n: int, *, t_start: float | None = None, t_end: float | None = None, device=None
) -> Tensor:
    """Steps uniform in sqrt(t) ("time_quadratic" of DDIM, Song et al. 2021, appendix D.2)."""
    _check_n(n)
    t_start, t_end = _ends(process, t_start, t_end)
    u = torch.linspace(t_start**0.5, t_end**0.5, n + 1, dtype=torch.float64, device=device)
    return u**2


def _lambda_range(process: GaussianProcess, t_start: float, t_end: float) -> tuple[Tensor, Tensor]:
    if not isinstance(process, GaussianProcess):
        raise TypeError(f"this grid needs a GaussianProcess, got {type(process).__name__}")
    ts = torch.tensor([t_start, t_end], dtype=torch.float64)
    lam = process.lambda_(ts)
    if not bool(torch.isfinite(lam).all()):
        raise ValueError(
            f"lambda is infinite at the grid ends ({t_start:g}, {t_end:g}); choose t_start/t_end"
            " strictly inside the process's range (e.g. t_end=1e-3 for VP)"
        )
    return lam[0], lam[1]


def uniform_lambda(
    process: GaussianProcess,
    n: int,
    *,
    t_start: float | None = None,
    t_end: float | None = None,
    device=None,
) -> Tensor:
    """Steps uniform in half log-SNR lambda (DPM-Solver's "logSNR" spacing, Lu et al. 2022)."""
    _check_n(n)
    t_start, t_end = _ends(process, t_start, t_end if t_end is not None else _default_end(process))
    l0, l1 = _lambda_range(process, t_start, t_end)
    lam = torch.linspace(float(l0), float(l1), n + 1, dtype=torch.float64)
    t = process.t_from_lambda(lam)
    t[0], t[-1] = t_start, t_end
    return t.to(device)


def karras(
    process: GaussianProcess,
    n: int,
    *,
    rho: float = 7.0,
    t_start: float | None = None,
    t_end: float | None = None,
    device=None,
) -> Tensor:
    """Karras et al. 2022 (arXiv:2206.00364) eq. 5 spacing in ``sigma/alpha = exp(-lambda)``.

    For EDM/VE this is the paper's sigma grid; for other processes it is the same grid in their
    equivalent VE noise level. ``rho = 7`` from the paper's Table 1.
    """
    _check_n(n)
    t_start, t_end = _ends(process, t_start, t_end if t_end is not None else _default_end(process))
    l0, l1 = _lambda_range(process, t_start, t_end)
    s_max, s_min = float(torch.exp(-l0)), float(torch.exp(-l1))
    ramp = torch.linspace(0, 1, n + 1, dtype=torch.float64)
    sig = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    t = process.t_from_lambda(-torch.log(sig))
    t[0], t[-1] = t_start, t_end
    return t.to(device)


def _default_end(process) -> float:
    """Where lambda-based grids stop by default: the EDM sigma_min, VE sigma_min, or 1e-3."""
    if hasattr(process, "sigma_min") and float(process.sigma(torch.tensor(0.0))) == 0.0:
        return float(process.sigma_min)  # EDM: t is sigma
    lam = process.lambda_(torch.tensor(float(process.t_min), dtype=torch.float64))
    if bool(torch.isfinite(lam)):
        return float(process.t_min)
    return 1e-3


def append_zero(grid: Tensor, t_zero: float = 0.0) -> Tensor:
    """Append a final step to ``t_zero`` (sigma = 0 for VP/EDM/RF): the final denoising step."""
    return torch.cat([grid, grid.new_tensor([t_zero])])


def given(times, *, device=None) -> Tensor:
    """A user-given grid, checked to be strictly decreasing and finite."""
    t = torch.as_tensor(times, dtype=torch.float64, device=device)
    if t.ndim != 1 or len(t) < 2:
        raise ValueError(f"a time grid must be 1-D with >= 2 entries, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()) or not bool((t[1:] < t[:-1]).all()):
        raise ValueError("a time grid must be finite and strictly decreasing")
    return t

"""Training-time distributions on [t_min, t_max]: uniform, logit-normal, U-shaped, log-normal.

Each is a frozen dataclass; ``sample(n, process, generator=..., device=..., dtype=...)`` returns
(n,) times inside the process's range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

_T_GUARD = 1e-5  # keeps sampled times off the exact ends, where some targets are singular


def _span(process, t_eps: float) -> tuple[float, float]:
    lo = max(process.t_min, t_eps)
    return lo, process.t_max


@dataclass(frozen=True)
class UniformTime:
    """t ~ U[t_min + eps, t_max] (Song et al. 2021 use eps = 1e-5 for VP)."""

    t_eps: float = _T_GUARD

    def sample(
        self, n: int, process, *, generator=None, device=None, dtype=torch.float32
    ) -> Tensor:
        """(n,) training times for ``process``, drawn from ``generator``."""
        lo, hi = _span(process, self.t_eps)
        u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        return (lo + (hi - lo) * u).to(dtype)


@dataclass(frozen=True)
class LogitNormalTime:
    """Logit-normal training times (SD3).

    Logit-normal times (Esser et al. 2024, SD3, arXiv:2403.03206, eq. 19): ``t = sigmoid(m +
    s z)`` rescaled to the process range; SD3's choice m = 0, s = 1.
    """

    mean: float = 0.0
    std: float = 1.0

    def sample(
        self, n: int, process, *, generator=None, device=None, dtype=torch.float32
    ) -> Tensor:
        """(n,) training times for ``process``, drawn from ``generator``."""
        lo, hi = _span(process, _T_GUARD)
        z = torch.randn(n, generator=generator, device=device, dtype=torch.float64)
        u = torch.sigmoid(self.mean + self.std * z)
        return (lo + (hi - lo) * u).to(dtype)


@dataclass(frozen=True)
class UShapedTime:
    """U-shaped training times (improved rectified flows).

    U-shaped times of improved rectified flows (Lee, Lin & Fanti 2024, arXiv:2405.20320,
    sec. 3.2): density proportional to ``cosh(a (2u - 1))`` on [0, 1], more weight at both ends;
    sampled by inverting its CDF. ``a = 4`` as in the paper.
    """

    a: float = 4.0

    def sample(
        self, n: int, process, *, generator=None, device=None, dtype=torch.float32
    ) -> Tensor:
        """(n,) training times for ``process``, drawn from ``generator``."""
        lo, hi = _span(process, _T_GUARD)
        v = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        sa = math.sinh(self.a)
        u = (torch.asinh((2 * v - 1) * sa) / self.a + 1) / 2
        return (lo + (hi - lo) * u).to(dtype)


@dataclass(frozen=True)
class LogNormalSigma:
    """EDM's log-normal training noise levels.

    EDM's training noise levels ``ln sigma ~ N(P_mean, P_std^2)`` (Karras et al. 2022,
    Table 1: -1.2, 1.2), clipped to the process range; for processes whose time is sigma.
    """

    p_mean: float = -1.2
    p_std: float = 1.2

    def sample(
        self, n: int, process, *, generator=None, device=None, dtype=torch.float32
    ) -> Tensor:
        """(n,) training times for ``process``, drawn from ``generator``."""
        z = torch.randn(n, generator=generator, device=device, dtype=torch.float64)
        sigma = torch.exp(self.p_mean + self.p_std * z)
        return sigma.clamp(max(process.t_min, _T_GUARD), process.t_max).to(dtype)

r"""Noise schedules of discrete diffusion: the probability ``alpha(t)`` that a token is untouched.

Both discrete processes (masked and uniform) corrupt each position independently: by time t a
token has been replaced (by the mask, or by a uniform draw) with probability ``1 - alpha(t)``.
Equivalently the forward CTMC runs with rate ``beta(t) = -alpha'(t) / alpha(t)``, and the total
noise ``sigma(t) = -log alpha(t)`` (SEDD's notation, Lou et al. 2024, arXiv:2310.16834).
Every schedule has ``alpha(0) = 1``; ``alpha(1)`` is small (zero when ``eps = 0``).

Schedules are frozen dataclasses; outputs take ``t``'s dtype and device (float64 when ``t`` is
a python number or an integer tensor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CosineSchedule", "DiscreteSchedule", "LinearSchedule", "LogLinearSchedule"]


def _float(t: Tensor | float) -> Tensor:
    t = t if isinstance(t, Tensor) else torch.tensor(t, dtype=torch.float64)
    return t if t.is_floating_point() else t.to(torch.float64)


@dataclass(frozen=True)
class DiscreteSchedule:
    """Base class: subclasses define ``alpha`` and ``d_alpha`` on t in [0, 1]."""

    def alpha(self, t: Tensor) -> Tensor:
        """Probability that a token is still clean at time t; shape of ``t``."""
        raise NotImplementedError

    def d_alpha(self, t: Tensor) -> Tensor:
        """Time derivative ``alpha'(t)`` (<= 0); shape of ``t``."""
        raise NotImplementedError

    def sigma(self, t: Tensor) -> Tensor:
        """Total noise ``-log alpha(t)``; shape of ``t``."""
        return -torch.log(self.alpha(t))

    def rate(self, t: Tensor) -> Tensor:
        """Forward jump rate ``beta(t) = sigma'(t) = -alpha'(t) / alpha(t)``; shape of ``t``."""
        return -self.d_alpha(t) / self.alpha(t)

    def __str__(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class LogLinearSchedule(DiscreteSchedule):
    """``alpha(t) = 1 - (1 - eps) t``: linear keep probability, log-linear total noise.

    The default schedule of SEDD (Lou et al. 2024, ``sigma(t) = -log(1 - (1 - eps)t)``) and
    MDLM (Sahoo et al. 2024, arXiv:2406.07524), with their eps = 1e-3. For masked
    diffusion the NELBO weight ``-alpha'/(1 - alpha)`` is then simply ``1/t``. ``eps = 0`` masks
    everything at t = 1, which makes the masked ELBO exact (no prior term).
    """

    eps: float = 1e-3

    def __post_init__(self) -> None:
        if not 0.0 <= self.eps < 1.0:
            raise ValueError(f"`eps` must lie in [0, 1), got {self.eps}.")

    def alpha(self, t: Tensor) -> Tensor:  # noqa: D102
        t = _float(t)
        return 1.0 - (1.0 - self.eps) * t

    def d_alpha(self, t: Tensor) -> Tensor:  # noqa: D102
        t = _float(t)
        return torch.full_like(t, -(1.0 - self.eps))


@dataclass(frozen=True)
class LinearSchedule(DiscreteSchedule):
    """Total noise linear in time, ``sigma(t) = sigma_max t``: a constant forward rate.

    A time-homogeneous CTMC with rate ``beta = sigma_max`` (Campbell et al. 2022,
    arXiv:2205.14987). ``alpha(1) = exp(-sigma_max)``; the default sigma_max = 10
    leaves ~4.5e-5 of the tokens clean at t = 1.
    """

    sigma_max: float = 10.0

    def __post_init__(self) -> None:
        if not self.sigma_max > 0:
            raise ValueError(f"`sigma_max` must be > 0, got {self.sigma_max}.")

    def sigma(self, t: Tensor) -> Tensor:  # noqa: D102
        return self.sigma_max * _float(t)

    def alpha(self, t: Tensor) -> Tensor:  # noqa: D102
        return torch.exp(-self.sigma(t))

    def d_alpha(self, t: Tensor) -> Tensor:  # noqa: D102
        return -self.sigma_max * self.alpha(t)

    def rate(self, t: Tensor) -> Tensor:  # noqa: D102
        return torch.full_like(_float(t), self.sigma_max)


@dataclass(frozen=True)
class CosineSchedule(DiscreteSchedule):
    """``alpha(t) = eps + (1 - eps) (1 - sin(pi t / 2))``: MaskGIT's cosine mask ratio.

    The masked fraction ``1 - alpha`` at generation progress ``r = 1 - t`` is MaskGIT's
    ``gamma(r) = cos(pi r / 2)`` (Chang et al. 2022, arXiv:2202.04200), written as
    ``alpha_t = 1 - cos(pi/2 (1 - t))`` by Shi et al. 2024 (MD4, arXiv:2406.04329);
    ``eps`` keeps ``alpha(1) > 0`` for the uniform process, whose rate diverges as alpha -> 0.
    """

    eps: float = 1e-3

    def __post_init__(self) -> None:
        if not 0.0 <= self.eps < 1.0:
            raise ValueError(f"`eps` must lie in [0, 1), got {self.eps}.")

    def alpha(self, t: Tensor) -> Tensor:  # noqa: D102
        t = _float(t)
        return self.eps + (1.0 - self.eps) * (1.0 - torch.sin(0.5 * math.pi * t))

    def d_alpha(self, t: Tensor) -> Tensor:  # noqa: D102
        t = _float(t)
        return -(1.0 - self.eps) * 0.5 * math.pi * torch.cos(0.5 * math.pi * t)

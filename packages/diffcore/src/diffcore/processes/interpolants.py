r"""Stochastic interpolants between two arbitrary densities, and the Brownian bridge.

``x_t = a(t) x_0 + b(t) x_1 + g(t) z`` with ``x_0`` from the data (target) density, ``x_1`` from a
source density and ``z ~ N(0, I)`` (Albergo, Boffi & Vanden-Eijnden 2023, arXiv:2303.08797,
Definition 2.1, with the roles of the ends swapped so that time runs from data at t = 0 to the
source at t = 1, as everywhere in diffcore). The velocity target is ``a' x_0 + b' x_1 + g' z``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..tree import expand_like
from .base import Process


@dataclass(frozen=True, kw_only=True)
class StochasticInterpolant(Process):
    """A general interpolant; subclass and define ``a``, ``b``, ``gamma`` (and derivatives).

    Attributes:
        source: draws x_1 ``like`` a tensor: ``source(like, generator) -> (B, *S)``; standard
            normal when None.
    """

    source: Callable[..., Tensor] | None = None

    @property
    def t_min(self) -> float:  # noqa: D102
        return 0.0

    @property
    def t_max(self) -> float:  # noqa: D102
        return 1.0

    def a(self, t: Tensor) -> Tensor:
        """The coefficient of x_0 (1 at t = 0, 0 at t = 1)."""
        raise NotImplementedError

    def b(self, t: Tensor) -> Tensor:
        """The coefficient of x_1 (0 at t = 0, 1 at t = 1)."""
        raise NotImplementedError

    def gamma(self, t: Tensor) -> Tensor:
        """The coefficient of the latent noise z (0 at both ends)."""
        return torch.zeros_like(t)

    def d_a(self, t: Tensor) -> Tensor:  # noqa: D102
        raise NotImplementedError

    def d_b(self, t: Tensor) -> Tensor:  # noqa: D102
        raise NotImplementedError

    def d_gamma(self, t: Tensor) -> Tensor:  # noqa: D102
        return torch.zeros_like(t)

    def interpolate(self, x0: Tensor, x1: Tensor, t: Tensor, z: Tensor | None = None) -> Tensor:
        """``x_t`` for (B, *S) ends and () or (B,) times."""
        t = torch.as_tensor(t, dtype=x0.dtype if x0.is_floating_point() else None)
        out = expand_like(self.a(t), x0) * x0 + expand_like(self.b(t), x0) * x1
        if z is not None:
            out = out + expand_like(self.gamma(t), x0) * z
        return out

    def velocity_target(self, x0: Tensor, x1: Tensor, t: Tensor, z: Tensor | None = None):
        """``d x_t / dt = a' x_0 + b' x_1 + gamma' z``, the regression target of the drift."""
        t = torch.as_tensor(t, dtype=x0.dtype)
        out = expand_like(self.d_a(t), x0) * x0 + expand_like(self.d_b(t), x0) * x1
        if z is not None:
            out = out + expand_like(self.d_gamma(t), x0) * z
        return out

    def source_sample(self, like: Tensor, *, generator=None) -> Tensor:
        """Draw x_1 from the source density."""
        if self.source is None:
            return self.noise_like(like, generator=generator)
        return self.project(self.source(like, generator))

    def prior_sample(self, like, *, generator=None):  # noqa: D102
        return self.source_sample(like, generator=generator)

    def sample_marginal(self, x0, t, *, generator=None, x1=None):  # noqa: D102
        if x1 is None:
            x1 = self.source_sample(x0, generator=generator)
        z = self.noise_like(x0, generator=generator)
        return self.interpolate(x0, x1, t, z), x1


@dataclass(frozen=True, kw_only=True)
class LinearInterpolant(StochasticInterpolant):
    """Linear interpolant between two densities, optionally noisy.

    ``x_t = (1 - t) x_0 + t x_1 + sqrt(2 eps t (1 - t)) z`` (eps = 0: rectified flow
    between two arbitrary densities). Albergo et al. 2023, eq. 2.10 family.
    """

    eps: float = 0.0

    def a(self, t):  # noqa: D102
        return 1 - t

    def b(self, t):  # noqa: D102
        return t.clone()

    def d_a(self, t):  # noqa: D102
        return -torch.ones_like(t)

    def d_b(self, t):  # noqa: D102
        return torch.ones_like(t)

    def gamma(self, t):  # noqa: D102
        return torch.sqrt((2 * self.eps * t * (1 - t)).clamp_min(0))

    def d_gamma(self, t):  # noqa: D102
        g = self.gamma(t)
        safe = torch.where(g > 0, g, torch.ones_like(g))
        return torch.where(g > 0, self.eps * (1 - 2 * t) / safe, torch.zeros_like(g))


@dataclass(frozen=True, kw_only=True)
class TrigInterpolant(StochasticInterpolant):
    """``x_t = cos(pi t / 2) x_0 + sin(pi t / 2) x_1`` (Albergo & Vanden-Eijnden 2022)."""

    def a(self, t):  # noqa: D102
        return torch.cos(0.5 * math.pi * t)

    def b(self, t):  # noqa: D102
        return torch.sin(0.5 * math.pi * t)

    def d_a(self, t):  # noqa: D102
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def d_b(self, t):  # noqa: D102
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)


@dataclass(frozen=True, kw_only=True)
class BrownianBridge(StochasticInterpolant):
    """The Brownian bridge of BBDM (Li et al. 2023, arXiv:2205.07680, eq. 3-4).

    ``x_t = (1 - m_t) x_0 + m_t y + sqrt(delta_t) z`` with ``m_t = t`` and
    ``delta_t = 2 s (m_t - m_t^2)``; ``y`` (the condition image) plays the role of x_1, and
    ``s`` scales the peak variance (s = 1 in the paper: variance 1/2 at t = 1/2).
    """

    s: float = 1.0

    def a(self, t):  # noqa: D102
        return 1 - t

    def b(self, t):  # noqa: D102
        return t.clone()

    def d_a(self, t):  # noqa: D102
        return -torch.ones_like(t)

    def d_b(self, t):  # noqa: D102
        return torch.ones_like(t)

    def variance(self, t: Tensor) -> Tensor:
        """delta_t = 2 s (m_t - m_t^2)."""
        return 2 * self.s * (t - t**2)

    def gamma(self, t):  # noqa: D102
        return torch.sqrt(self.variance(t).clamp_min(0))

    def d_gamma(self, t):  # noqa: D102
        g = self.gamma(t)
        safe = torch.where(g > 0, g, torch.ones_like(g))
        return torch.where(g > 0, self.s * (1 - 2 * t) / safe, torch.zeros_like(g))

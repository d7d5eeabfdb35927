"""The Process protocol: a forward corruption with its marginals and prior, nothing about networks.

Time runs from data (``t_min``, typically 0) to noise (``t_max``); samplers integrate backwards.
A *process tree* (a tuple or dict of processes matching a tuple/dict state) is a product process:
each leaf of the state diffuses under its own process, with one shared time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..tree import randn_like
from .constraints import Constraint


@dataclass(frozen=True, kw_only=True)
class Process(ABC):
    """A forward process on one tensor leaf.

    Attributes:
        constraint: optional projection applied to noise and to network outputs
            (symmetric adjacency, zero centre of mass, node masks). ``None`` means unconstrained.
    """

    constraint: Constraint | None = field(default=None, compare=False)

    @property
    @abstractmethod
    def t_min(self) -> float:
        """Smallest time of the process (data end)."""

    @property
    @abstractmethod
    def t_max(self) -> float:
        """Largest time of the process (prior end)."""

    def project(self, x: Tensor) -> Tensor:
        """Project ``x`` (B, *S) onto the constraint set (identity when unconstrained)."""
        return x if self.constraint is None else self.constraint.project(x)

    def noise_like(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Standard normal noise shaped like ``x`` (B, *S), projected onto the constraint."""
        z = randn_like(x, generator=generator)
        return z if self.constraint is None else self.constraint.project_noise(z)

    @abstractmethod
    def sample_marginal(
        self, x0: Tensor, t: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw ``x_t ~ p(x_t | x_0)``.

        Args:
            x0: (B, *S) clean data.
            t: () or (B,) times.
            generator: source of the noise.

        Returns:
            (x_t, noise): the sample and the noise it was built from, both (B, *S).
        """

    @abstractmethod
    def prior_sample(self, like: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw from the prior at ``t_max`` with the shape, dtype and device of ``like``."""

    def check_time(self, t: Any) -> Tensor:
        """Return ``t`` as a tensor, raising if it leaves ``[t_min, t_max]`` or is not finite."""
        t = torch.as_tensor(t)
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"`t` must be finite, got {t}")
        tol = 1e-6 * max(1.0, abs(self.t_max))
        if bool((t < self.t_min - tol).any()) or bool((t > self.t_max + tol).any()):
            raise ValueError(
                f"`t` must lie in [{self.t_min:g}, {self.t_max:g}] for {type(self).__name__}, "
                f"got values in [{float(t.min()):g}, {float(t.max()):g}]"
            )
        return t

"""The PDEs that LPINNs solve: ``u_t + a(u) u_x = nu u_xx`` on a periodic interval.

In the Lagrangian frame (Mojgani, Balajewicz & Hassanzadeh 2022, arXiv:2205.02902, sec. 4) a
particle that starts at ``xi`` moves along the characteristic ``dx/dt = a(u)`` and the state
along it obeys ``du/dt = nu u_xx``. Two instances:

- `Convection`: ``a(u) = beta`` (with optional diffusion ``nu``), ``u0 = sin x`` on
  ``[0, 2 pi)``, ``t in [0, 1]`` (Krishnapriyan et al. 2021, arXiv:2109.01050, sec. 3.1).
- `Burgers`: ``a(u) = u``, ``nu = 0.01/pi``, ``u0 = -sin(pi x)`` on ``[-1, 1)``, ``t in [0, 1]``
  (Raissi et al. 2019, sec. 3.1); periodic with period 2, which the solution keeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..solvers.burgers import SINE, burgers_cole_hopf
from ..solvers.convection import convection_diffusion_fft, periodic_grid

__all__ = ["Burgers", "Convection", "Problem", "make_problem"]


@dataclass(frozen=True, kw_only=True)
class Problem:
    """A periodic 1-D convection-diffusion problem ``u_t + a(u) u_x = nu u_xx``.

    Attributes:
        x_min: left end of the periodic interval.
        length: period ``L``.
        t_max: final time.
        nu: diffusivity (``>= 0``).
    """

    name: ClassVar[str] = "problem"
    x_min: float
    length: float
    t_max: float = 1.0
    nu: float = 0.0

    def u0(self, x: Tensor) -> Tensor:
        """Initial condition ``u(x, 0)``."""
        raise NotImplementedError

    def velocity(self, u: Tensor) -> Tensor:
        """Characteristic speed ``a(u)``, the right side of ``dx/dt``."""
        raise NotImplementedError

    @property
    def speed_scale(self) -> float:
        """A bound of ``|a(u)|``: the scale of particle displacement per unit time."""
        raise NotImplementedError

    def exact(self, x: Tensor, t: Tensor) -> Tensor:
        """Reference solution ``u(x, t)`` at broadcastable ``x``, ``t``."""
        raise NotImplementedError

    def grid(
        self, n_x: int = 256, n_t: int = 101, *, dtype: torch.dtype = torch.float64
    ) -> tuple[Tensor, Tensor]:
        """Evaluation grid: ``x`` (n_x,) periodic (right end excluded), ``t`` (n_t,) to t_max."""
        x = periodic_grid(n_x, self.x_min, self.length, dtype=dtype)
        t = torch.linspace(0.0, self.t_max, n_t, dtype=dtype)
        return x, t


@dataclass(frozen=True, kw_only=True)
class Convection(Problem):
    """``u_t + beta u_x = nu u_xx``, ``u0 = sin x`` on ``[0, 2 pi)`` (Krishnapriyan et al. 2021)."""

    name: ClassVar[str] = "convection"
    beta: float = 30.0
    x_min: float = 0.0
    length: float = 2 * math.pi

    def u0(self, x: Tensor) -> Tensor:  # noqa: D102
        return torch.sin(2 * math.pi / self.length * (x - self.x_min))

    def velocity(self, u: Tensor) -> Tensor:  # noqa: D102
        return torch.full_like(u, self.beta)

    @property
    def speed_scale(self) -> float:  # noqa: D102
        return max(abs(self.beta), 1.0)

    def exact(self, x: Tensor, t: Tensor) -> Tensor:
        """``exp(-nu k^2 t) sin(k (x - x_min - beta t))`` with ``k = 2 pi / L``."""
        x, t = torch.broadcast_tensors(torch.as_tensor(x), torch.as_tensor(t))
        k = 2 * math.pi / self.length
        return torch.exp(-self.nu * k**2 * t) * torch.sin(k * (x - self.x_min - self.beta * t))

    def exact_fft(self, n_x: int, t: Tensor) -> Tensor:
        """The same solution by `convection_diffusion_fft` on ``n_x`` points: (T, n_x)."""
        x = periodic_grid(n_x, self.x_min, self.length, dtype=t.dtype)
        return convection_diffusion_fft(
            self.u0(x), t, beta=self.beta, nu=self.nu, length=self.length
        )


@dataclass(frozen=True, kw_only=True)
class Burgers(Problem):
    """``u_t + u u_x = nu u_xx``, ``u0 = -sin(pi x)`` on ``[-1, 1)`` (Raissi et al. 2019)."""

    name: ClassVar[str] = "burgers"
    x_min: float = -1.0
    length: float = 2.0
    nu: float = 0.01 / math.pi

    def __post_init__(self) -> None:
        if self.x_min != -1.0 or self.length != 2.0:
            raise ValueError(
                "`Burgers` is defined on [-1, 1) (u0 = -sin(pi x)); "
                f"got x_min={self.x_min}, length={self.length}."
            )

    def u0(self, x: Tensor) -> Tensor:  # noqa: D102
        return SINE.u0(x)

    def velocity(self, u: Tensor) -> Tensor:  # noqa: D102
        return u

    @property
    def speed_scale(self) -> float:  # noqa: D102
        return 1.0  # max |u0|; the maximum principle keeps |u| <= 1

    def exact(self, x: Tensor, t: Tensor) -> Tensor:
        """Cole-Hopf solution (`burgers_cole_hopf`), inviscid (``nu = 0``) is not supported."""
        return burgers_cole_hopf(x, t, nu=self.nu)


def make_problem(equation: str, *, beta: float = 30.0, nu: float | None = None) -> Problem:
    """``"convection"`` (speed ``beta``, diffusivity ``nu`` or 0) or ``"burgers"`` (``nu``)."""
    if equation == "convection":
        return Convection(beta=beta, nu=0.0 if nu is None else nu)
    if equation == "burgers":
        return Burgers() if nu is None else Burgers(nu=nu)
    raise ValueError(f"unknown equation {equation!r}; known: convection, burgers.")

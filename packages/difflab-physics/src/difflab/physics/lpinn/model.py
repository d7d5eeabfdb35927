"""Networks: the two-branch Lagrangian PINN and the Eulerian PINN baseline.

`LagrangianPINN` follows the parallel architecture of Mojgani, Balajewicz & Hassanzadeh 2022
(arXiv:2205.02902, sec. 4, fig. 5): both branches read the Lagrangian label ``xi`` (a particle's
initial position) and time ``t``. The *characteristic* branch gives the particle path
``x(xi, t)``, the *solution* branch the state ``u(xi, t)`` carried by that particle. ``xi``
enters through a periodic embedding ``[sin(k w xi), cos(k w xi)]``, ``w = 2 pi / L``, so
periodicity holds exactly. A path is not periodic in ``xi`` (``x(xi + L) = x(xi) + L``), so the
characteristic branch predicts the displacement: ``x = xi + c t_max * N_x(features)``, with ``c``
the problem's speed scale so the network's output is O(1) for any ``beta``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["MLP", "EulerianPINN", "LagrangianPINN", "PeriodicEmbedding"]


class MLP(nn.Module):
    """Fully connected tanh network with Xavier-normal weights (the usual PINN network).

    Args:
        d_in: input features.
        d_out: outputs.
        hidden: width of each hidden layer.
        depth: number of hidden layers.
    """

    def __init__(self, d_in: int, d_out: int, *, hidden: int = 50, depth: int = 4) -> None:
        super().__init__()
        if depth < 1 or hidden < 1:
            raise ValueError(f"`depth` and `hidden` must be >= 1, got {depth}, {hidden}.")
        layers: list[nn.Module] = []
        width = d_in
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        layers.append(nn.Linear(width, d_out))
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, z: Tensor) -> Tensor:
        """(N, d_in) -> (N, d_out)."""
        return self.net(z)


class PeriodicEmbedding(nn.Module):
    """``xi -> [sin(k w (xi - x_min)), cos(k w (xi - x_min))]_{k=1..K}``, ``w = 2 pi / L``."""

    def __init__(self, x_min: float, length: float, harmonics: int = 1) -> None:
        super().__init__()
        if harmonics < 1:
            raise ValueError(f"`harmonics` must be >= 1, got {harmonics}.")
        self.x_min, self.length, self.harmonics = x_min, length, harmonics

    @property
    def dim(self) -> int:
        """Number of output features, ``2 K``."""
        return 2 * self.harmonics

    def forward(self, xi: Tensor) -> Tensor:
        """(N,) -> (N, 2K)."""
        k = torch.arange(1, self.harmonics + 1, dtype=xi.dtype, device=xi.device)
        phase = 2 * math.pi / self.length * (xi - self.x_min)[:, None] * k
        return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)


class LagrangianPINN(nn.Module):
    """Two-branch LPINN: ``(xi, t) -> (x(xi, t), u(xi, t))``.

    Args:
        x_min: left end of the periodic interval.
        length: period ``L``.
        t_max: final time (inputs are scaled to ``t / t_max``).
        speed_scale: scale ``c`` of the characteristic speed; the displacement is
            ``c t_max N_x``.
        hidden: width of both branches.
        depth: hidden layers of both branches.
        harmonics: Fourier harmonics ``K`` of the periodic embedding.
    """

    def __init__(
        self,
        x_min: float,
        length: float,
        t_max: float = 1.0,
        *,
        speed_scale: float = 1.0,
        hidden: int = 50,
        depth: int = 4,
        harmonics: int = 1,
    ) -> None:
        super().__init__()
        self.embed = PeriodicEmbedding(x_min, length, harmonics)
        self.t_max, self.speed_scale = t_max, speed_scale
        self.characteristic = MLP(self.embed.dim + 1, 1, hidden=hidden, depth=depth)
        self.solution = MLP(self.embed.dim + 1, 1, hidden=hidden, depth=depth)
        # Particles start at rest (x = xi, so x_xi = 1): a random initial map can fold
        # (x_xi <= 0), where the Lagrangian u_xx = (u_xi / x_xi)_xi / x_xi is singular.
        last = self.characteristic.net[-1]
        if isinstance(last, nn.Linear):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, xi: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``xi`` (N,), ``t`` (N,) -> path ``x`` (N,), state ``u`` (N,)."""
        z = torch.cat([self.embed(xi), (t / self.t_max)[:, None]], dim=-1)
        x = xi + self.speed_scale * self.t_max * self.characteristic(z)[:, 0]
        return x, self.solution(z)[:, 0]


class EulerianPINN(nn.Module):
    """Baseline PINN: an MLP on ``(x, t)`` mapped to ``[-1, 1]^2`` (Raissi et al. 2019).

    Args:
        x_min: left end of the interval.
        length: its length.
        t_max: final time.
        hidden: width.
        depth: hidden layers.
    """

    def __init__(
        self, x_min: float, length: float, t_max: float = 1.0, *, hidden: int = 50, depth: int = 4
    ) -> None:
        super().__init__()
        self.x_min, self.length, self.t_max = x_min, length, t_max
        self.net = MLP(2, 1, hidden=hidden, depth=depth)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """``x`` (N,), ``t`` (N,) -> ``u`` (N,)."""
        zx = 2 * (x - self.x_min) / self.length - 1
        zt = 2 * t / self.t_max - 1
        return self.net(torch.stack([zx, zt], dim=-1))[:, 0]

"""Linear convection and convection-diffusion on a periodic interval, solved exactly.

``u_t + beta u_x = nu u_xx`` with periodic boundary conditions. For ``nu = 0`` the solution is
the translated initial condition ``u(x, t) = u0(x - beta t)``; this is the benchmark on which
Krishnapriyan et al. 2021 (arXiv:2109.01050, sec. 3.1) show that PINNs fail for ``beta >~ 20``
(``x in [0, 2 pi)``, ``t in [0, 1]``, ``u0 = sin x``). With diffusion every Fourier mode
``k`` evolves on its own: ``u_hat_k(t) = u_hat_k(0) exp(-(i beta kappa + nu kappa^2) t)`` with
``kappa = 2 pi k / L``, which `convection_diffusion_fft` applies with one FFT pair.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["convection_diffusion_fft", "convection_exact", "periodic_grid"]


def periodic_grid(
    n: int,
    x_min: float = 0.0,
    length: float = 2 * math.pi,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``n`` equispaced points of ``[x_min, x_min + length)`` (right end excluded).

    >>> periodic_grid(4, 0.0, 4.0)
    tensor([0., 1., 2., 3.])
    """
    if n < 1:
        raise ValueError(f"`n` must be >= 1, got {n}.")
    if not length > 0:
        raise ValueError(f"`length` must be > 0, got {length}.")
    return x_min + length / n * torch.arange(n, dtype=dtype, device=device)


def convection_exact(
    x: Tensor,
    t: Tensor,
    beta: float,
    u0: Callable[[Tensor], Tensor] = torch.sin,
) -> Tensor:
    """Exact solution ``u0(x - beta t)`` of ``u_t + beta u_x = 0`` for a periodic ``u0``.

    Args:
        x: positions, any shape broadcastable with ``t``.
        t: times, broadcastable with ``x``.
        beta: the convection speed.
        u0: the initial condition (periodic; default ``sin``, period ``2 pi``).

    Returns:
        u: the broadcast shape of ``x`` and ``t``.

    >>> convection_exact(torch.tensor([0.5]), torch.tensor([0.0]), beta=30.0)
    tensor([0.4794])
    """
    x, t = torch.broadcast_tensors(torch.as_tensor(x), torch.as_tensor(t))
    return u0(x - beta * t)


def convection_diffusion_fft(
    u0: Tensor,
    t: Tensor,
    *,
    beta: float,
    nu: float,
    length: float = 2 * math.pi,
) -> Tensor:
    """Exact (spectral) solution of ``u_t + beta u_x = nu u_xx`` on a periodic grid.

    Each Fourier mode is advanced in closed form, so the only error is that of representing
    ``u0`` by its ``N`` grid values (none for band-limited ``u0``).

    Args:
        u0: (B, N) or (N,) initial values on the grid ``x_min + j * length / N``.
        t: (T,) or scalar times (any sign of ``beta``; ``t >= 0`` when ``nu > 0``).
        beta: convection speed.
        nu: diffusivity, ``>= 0``.
        length: period ``L`` of the domain.

    Returns:
        u: (B, T, N) (or (T, N) for 1-D ``u0``), real, dtype of ``u0``.

    >>> x = periodic_grid(32)
    >>> u = convection_diffusion_fft(torch.sin(x), torch.tensor([0.0, 1.0]), beta=1.0, nu=0.1)
    >>> tuple(u.shape)
    (2, 32)
    """
    if nu < 0:
        raise ValueError(f"`nu` must be >= 0 (diffusion), got {nu}.")
    if u0.ndim not in (1, 2):
        raise ValueError(f"`u0` must have shape (N,) or (B, N), got {tuple(u0.shape)}.")
    squeeze = u0.ndim == 1
    u0b = u0[None] if squeeze else u0
    t = torch.as_tensor(t, dtype=u0.dtype, device=u0.device).reshape(-1)
    if nu > 0 and bool((t < 0).any()):
        raise ValueError("`t` must be >= 0 when `nu > 0` (backward diffusion is ill-posed).")
    n = u0b.shape[-1]
    kappa = 2 * math.pi / length * torch.fft.rfftfreq(n, d=1.0 / n).to(u0.device, u0.dtype)
    # (T, K): exp(-(i beta kappa + nu kappa^2) t)
    rate = torch.complex(-nu * kappa**2, -beta * kappa)
    factor = torch.exp(rate[None, :] * t[:, None].to(rate.dtype))
    if n % 2 == 0:
        # The Nyquist mode of a real signal is real; moving it would leave the real subspace.
        # Keep its amplitude decay, drop its phase (the standard real-FFT convention).
        factor[:, -1] = torch.exp(-nu * kappa[-1] ** 2 * t).to(factor.dtype)
    u_hat = torch.fft.rfft(u0b, dim=-1)
    u = torch.fft.irfft(u_hat[:, None, :] * factor[None], n=n, dim=-1)
    return u[0] if squeeze else u

r"""Kuramoto-Sivashinsky reference solver: periodic 1-D, ETDRK4, batched in torch.

The equation, on ``x in [0, L)`` with periodic boundaries::

    u_t + u u_x + u_xx + nu u_xxxx = 0.

In Fourier space (wavenumbers ``k = 2 pi m / L``) it splits into a stiff linear part and a
quadratic nonlinearity, ``v_t = c(k) v + N(v)`` with ``c(k) = k^2 - nu k^4`` and
``N(v) = -(i k / 2) F[(F^{-1} v)^2]``. We integrate it with the exponential time-differencing
fourth-order Runge-Kutta scheme of Cox & Matthews (2002), with the coefficients evaluated by the
contour integral of Kassam & Trefethen (2005, SIAM J. Sci. Comput. 26(4), eqs. 2.5 and sec. 5),
which avoids the cancellation of the phi-functions at small ``h c``. The ``k = 0`` mode has
``c = 0`` and ``N = 0``, so the spatial mean of ``u`` is conserved to round-off.

The data setup follows Brandstetter et al. 2022 (LPSDA, arXiv:2202.07643) as used by PDE-Refiner
(Lippe et al. 2023, arXiv:2308.05732, sec. 4.1 and app. D.1): 256 grid points, a domain length
``L`` drawn per trajectory from ``64 * [0.9, 1.1]``, an initial condition that is a sum of random
sines, a burn-in that is discarded, then 140 saved steps of ``dt = 0.2``. Every trajectory draws
its initial condition and length from its own seed ``derive_seed(seed, split, index)``, so a
dataset is the same however its generation is split over ranks (`diffcore.distributed`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from diffcore.distributed import derive_seed

__all__ = [
    "KS_PRESETS",
    "PAPER_EVAL_STEPS",
    "ETDRK4Coefficients",
    "KSConfig",
    "KSTrajectories",
    "etdrk4_coefficients",
    "generate_ks",
    "ks_initial_condition",
    "ks_wavenumbers",
    "solve_ks",
    "solve_ks_scipy",
]

_CONTOUR_POINTS = 32  # Kassam & Trefethen 2005, sec. 5: M = 32 points on the circle suffice


@dataclass(frozen=True, kw_only=True)
class KSConfig:
    """Settings of a Kuramoto-Sivashinsky dataset.

    Attributes:
        n_points: grid points N (x_j = j L / N).
        length: nominal domain length L.
        length_jitter: L is drawn uniformly from ``length * [1 - jitter, 1 + jitter]``.
        nu: hyper-viscosity (coefficient of u_xxxx).
        dt: time between saved states.
        n_steps: saved states after the burn-in (the first one is at the end of the burn-in).
        burn_in: steps of ``dt`` integrated and discarded before saving.
        substeps: ETDRK4 steps per ``dt`` (solver step ``dt / substeps``).
        n_sines: number of sines in the initial condition.
        max_wavenumber: sines have integer wavenumbers in [1, max_wavenumber] (periods per L).
        max_amplitude: amplitudes are uniform in [-max_amplitude, max_amplitude].
    """

    n_points: int = 256
    length: float = 64.0
    length_jitter: float = 0.1
    nu: float = 1.0
    dt: float = 0.2
    n_steps: int = 140
    burn_in: int = 360
    substeps: int = 4
    n_sines: int = 10
    max_wavenumber: int = 3
    max_amplitude: float = 0.5

    def __post_init__(self) -> None:
        for name in ("n_points", "n_steps", "substeps", "n_sines", "max_wavenumber"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        if self.n_points % 2:
            raise ValueError(f"`n_points` must be even, got {self.n_points}.")
        if self.burn_in < 0:
            raise ValueError(f"`burn_in` must be >= 0, got {self.burn_in}.")
        if not 0.0 <= self.length_jitter < 1.0:
            raise ValueError(f"`length_jitter` must be in [0, 1), got {self.length_jitter}.")
        for name in ("length", "nu", "dt"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}.")


# PDE-Refiner app. D.1: validation and test trajectories are 640 steps long (training: 140).
PAPER_EVAL_STEPS = 640

KS_PRESETS: dict[str, KSConfig] = {
    # PDE-Refiner app. D.1 / LPSDA: N=256, L=64 +- 10%, dt=0.2, 140 saved steps after burn-in.
    "pde-refiner": KSConfig(),
    # A CPU smoke-test size: same physics and grid, shorter burn-in and trajectories.
    "quick": KSConfig(n_steps=40, burn_in=100),
}


@dataclass(frozen=True)
class ETDRK4Coefficients:
    """ETDRK4 coefficients for a diagonal linear part ``c`` and step ``h`` (all shaped like c).

    Attributes:
        e: exp(h c).
        e2: exp(h c / 2).
        q: h phi_1(h c / 2) / 2 ... as in Kassam & Trefethen's ``Q``.
        f1: Kassam & Trefethen's ``f1`` (weight of N(v_n)).
        f2: ``f2`` (weight of N(a) + N(b)).
        f3: ``f3`` (weight of N(c)).
    """

    e: Tensor
    e2: Tensor
    q: Tensor
    f1: Tensor
    f2: Tensor
    f3: Tensor


def etdrk4_coefficients(
    c: Tensor, h: float, *, n_contour: int = _CONTOUR_POINTS
) -> ETDRK4Coefficients:
    """ETDRK4 coefficients by the contour integral of Kassam & Trefethen 2005 (sec. 5).

    Each phi-function of ``z = h c`` is averaged over ``n_contour`` points of the unit circle
    around ``z``; for real ``c`` the average is taken of the real part.

    Args:
        c: (..., M) real linear-operator eigenvalues (float64 recommended).
        h: step size.
        n_contour: points on the circle.

    Returns:
        Coefficients shaped like ``c``, in its dtype and on its device.
    """
    if c.is_complex():
        raise ValueError("`c` must be real (a dissipative/dispersive diagonal operator).")
    j = torch.arange(1, n_contour + 1, device=c.device, dtype=c.dtype)
    r = torch.exp(1j * math.pi * (j - 0.5) / n_contour)  # (n_contour,) complex
    z = h * c
    lr = z.unsqueeze(-1).to(r.dtype) + r  # (..., M, n_contour)

    def avg(f: Tensor) -> Tensor:
        return f.mean(dim=-1).real

    el = torch.exp(lr)
    q = h * avg((torch.exp(lr / 2) - 1) / lr)
    f1 = h * avg((-4 - lr + el * (4 - 3 * lr + lr**2)) / lr**3)
    f2 = h * avg((2 + lr + el * (-2 + lr)) / lr**3)
    f3 = h * avg((-4 - 3 * lr - lr**2 + el * (4 - lr)) / lr**3)
    return ETDRK4Coefficients(torch.exp(z), torch.exp(z / 2), q, f1, f2, f3)


def ks_wavenumbers(n_points: int, length: Tensor) -> Tensor:
    """Angular wavenumbers of ``rfft`` on a grid of `n_points` over `length`.

    Args:
        n_points: N.
        length: (B,) domain lengths.

    Returns:
        (B, N // 2 + 1) ``2 pi m / L`` for m = 0..N/2; the Nyquist mode is set to 0 in the
        derivative of the nonlinearity (odd derivatives of a real signal).
    """
    m = torch.arange(n_points // 2 + 1, device=length.device, dtype=length.dtype)
    return 2 * math.pi * m / length.unsqueeze(-1)


def _as_lengths(length: Tensor | float, batch: int, like: Tensor) -> Tensor:
    lengths = torch.as_tensor(length, device=like.device, dtype=like.dtype)
    if lengths.ndim == 0:
        lengths = lengths.expand(batch)
    if lengths.shape != (batch,):
        raise ValueError(
            f"`length` must be a scalar or shape (B,) = ({batch},), got {tuple(lengths.shape)}."
        )
    if bool((lengths <= 0).any()):
        raise ValueError("`length` must be > 0.")
    return lengths


def solve_ks(
    u0: Tensor,
    length: Tensor | float,
    *,
    dt: float,
    n_steps: int,
    substeps: int = 4,
    burn_in: int = 0,
    nu: float = 1.0,
    progress: bool = True,
) -> Tensor:
    """Integrate KS from `u0` with ETDRK4 and return states every `dt`.

    Args:
        u0: (B, N) initial states on the grid ``x_j = j L / N`` (float64 recommended; the
            computation runs in ``u0``'s dtype and device).
        length: domain length, a scalar or (B,) per trajectory.
        dt: time between returned states.
        n_steps: number of returned states; the first is the state after `burn_in` steps.
        substeps: ETDRK4 steps per `dt`.
        burn_in: steps of `dt` integrated first and not returned.
        nu: coefficient of u_xxxx.
        progress: show a progress bar.

    Returns:
        (B, n_steps, N) states at times ``(burn_in + i) dt``, i = 0..n_steps-1.
    """
    if u0.ndim != 2 or u0.shape[1] % 2:
        raise ValueError(f"`u0` must have shape (B, N) with N even, got {tuple(u0.shape)}.")
    if not u0.is_floating_point():
        raise ValueError(f"`u0` must be floating point, got {u0.dtype}.")
    if not torch.isfinite(u0).all():
        raise ValueError("`u0` has non-finite values.")
    if n_steps < 1 or substeps < 1 or burn_in < 0 or dt <= 0:
        raise ValueError(
            f"need n_steps >= 1, substeps >= 1, burn_in >= 0, dt > 0; got n_steps={n_steps}, "
            f"substeps={substeps}, burn_in={burn_in}, dt={dt}."
        )
    batch, n = u0.shape
    lengths = _as_lengths(length, batch, u0)
    k = ks_wavenumbers(n, lengths)
    coef = etdrk4_coefficients(k**2 - nu * k**4, dt / substeps)
    g = -0.5j * k
    g[..., -1] = 0  # Nyquist mode of an odd derivative of a real signal

    def nonlinear(v: Tensor) -> Tensor:
        u = torch.fft.irfft(v, n=n)
        return g * torch.fft.rfft(u * u)

    v = torch.fft.rfft(u0)
    out = torch.empty(batch, n_steps, n, dtype=u0.dtype, device=u0.device)
    total = burn_in + n_steps - 1
    for i in tqdm(range(total + 1), desc="KS ETDRK4", disable=not progress, leave=False):
        if i >= burn_in:
            out[:, i - burn_in] = torch.fft.irfft(v, n=n)
            if not torch.isfinite(out[:, i - burn_in]).all():
                raise FloatingPointError(
                    f"non-finite KS state at step {i} (t={i * dt:.3g}); reduce dt/substeps."
                )
        if i == total:
            break
        for _ in range(substeps):
            nv = nonlinear(v)
            a = coef.e2 * v + coef.q * nv
            na = nonlinear(a)
            b = coef.e2 * v + coef.q * na
            nb = nonlinear(b)
            c = coef.e2 * a + coef.q * (2 * nb - nv)
            nc = nonlinear(c)
            v = coef.e * v + nv * coef.f1 + 2 * (na + nb) * coef.f2 + nc * coef.f3
    return out


def ks_initial_condition(
    n_points: int,
    length: float,
    *,
    n_sines: int = 10,
    max_wavenumber: int = 3,
    max_amplitude: float = 0.5,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """A sum of random sines ``sum_i A_i sin(2 pi l_i x / L + phi_i)`` (LPSDA's KS setup).

    ``A_i ~ U[-max_amplitude, max_amplitude]``, ``l_i ~ U{1..max_wavenumber}``,
    ``phi_i ~ U[0, 2 pi)``; integer ``l_i`` make it periodic on L with zero mean.

    Returns:
        (n_points,) the state on ``x_j = j L / n_points``.
    """
    amp = (2 * torch.rand(n_sines, generator=generator, dtype=dtype) - 1) * max_amplitude
    wave = torch.randint(1, max_wavenumber + 1, (n_sines,), generator=generator).to(dtype)
    phase = 2 * math.pi * torch.rand(n_sines, generator=generator, dtype=dtype)
    x = torch.arange(n_points, dtype=dtype) * (length / n_points)
    arg = 2 * math.pi * wave[:, None] * x[None, :] / length + phase[:, None]
    return (amp[:, None] * torch.sin(arg)).sum(0)


@dataclass(frozen=True)
class KSTrajectories:
    """A batch of KS trajectories.

    Attributes:
        u: (B, T, N) states.
        length: (B,) domain lengths L.
        dt: time between states.
        nu: coefficient of u_xxxx.
        index: (B,) global trajectory indices (for reassembling rank-split generation).
    """

    u: Tensor
    length: Tensor
    dt: float
    nu: float
    index: Tensor

    @property
    def dx(self) -> Tensor:
        """(B,) grid spacings L / N."""
        return self.length / self.u.shape[-1]

    def __len__(self) -> int:
        return self.u.shape[0]


def generate_ks(
    indices: range | list[int] | int,
    config: KSConfig | None = None,
    *,
    seed: int = 0,
    split: int = 0,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    progress: bool = True,
) -> KSTrajectories:
    """Generate KS trajectories; trajectory ``i`` is a function of ``(seed, split, i)`` only.

    Args:
        indices: global trajectory indices to generate (an int n means ``range(n)``); pass
            ``diffcore.distributed.shard_indices(n)`` to split the work over ranks.
        config: physics and sampling settings (default: the PDE-Refiner setup).
        seed: dataset seed.
        split: stream id (e.g. 0 train, 1 valid, 2 test) so splits never share trajectories.
        batch_size: trajectories integrated together.
        device: where to integrate (CPU or CUDA).
        dtype: solver dtype (float64 by default); the result is returned in it.
        progress: show a progress bar.

    Returns:
        `KSTrajectories` with ``u`` of shape (len(indices), config.n_steps, config.n_points).
    """
    cfg = config or KS_PRESETS["pde-refiner"]
    idx = list(range(indices)) if isinstance(indices, int) else list(indices)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    u0s, lengths = [], []
    for i in idx:
        gen = torch.Generator().manual_seed(derive_seed(seed, split, i))
        jitter = (2 * torch.rand((), generator=gen, dtype=torch.float64) - 1) * cfg.length_jitter
        length = cfg.length * (1 + float(jitter))
        u0s.append(
            ks_initial_condition(
                cfg.n_points,
                length,
                n_sines=cfg.n_sines,
                max_wavenumber=cfg.max_wavenumber,
                max_amplitude=cfg.max_amplitude,
                generator=gen,
                dtype=torch.float64,
            )
        )
        lengths.append(length)
    if not idx:
        empty = torch.empty(0, cfg.n_steps, cfg.n_points, dtype=dtype)
        return KSTrajectories(
            empty, torch.empty(0, dtype=dtype), cfg.dt, cfg.nu, torch.empty(0, dtype=torch.long)
        )
    u0 = torch.stack(u0s).to(device=dev, dtype=dtype)
    length_t = torch.tensor(lengths, dtype=dtype, device=dev)
    chunks = []
    starts = range(0, len(idx), batch_size)
    for s in tqdm(starts, desc="KS trajectories", disable=not progress or len(starts) == 1):
        chunks.append(
            solve_ks(
                u0[s : s + batch_size],
                length_t[s : s + batch_size],
                dt=cfg.dt,
                n_steps=cfg.n_steps,
                substeps=cfg.substeps,
                burn_in=cfg.burn_in,
                nu=cfg.nu,
                progress=progress,
            )
        )
    return KSTrajectories(
        torch.cat(chunks), length_t, cfg.dt, cfg.nu, torch.tensor(idx, dtype=torch.long)
    )


def solve_ks_scipy(
    u0: np.ndarray,
    length: float,
    t_eval: np.ndarray,
    *,
    nu: float = 1.0,
    method: str = "Radau",
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> np.ndarray:
    """Reference: the same Fourier-Galerkin ODE solved by an implicit scipy integrator.

    The ODE ``du/dt = F^{-1}[(k^2 - nu k^4) F u - (i k / 2) F u^2]`` (on grid values) is
    integrated by `scipy.integrate.solve_ivp` (Radau or BDF) at tight tolerances; it shares
    the spatial discretisation with `solve_ks`, so the difference measures the ETDRK4 time
    error only.

    Args:
        u0: (N,) initial state.
        length: domain length.
        t_eval: (T,) output times from 0.
        nu: coefficient of u_xxxx.
        method: ``"Radau"`` or ``"BDF"``.
        rtol: relative tolerance.
        atol: absolute tolerance.

    Returns:
        (T, N) states at `t_eval`.
    """
    from scipy.integrate import solve_ivp

    if method not in ("Radau", "BDF"):
        raise ValueError(f"`method` must be 'Radau' or 'BDF' (implicit), got {method!r}.")
    n = u0.shape[-1]
    k = 2 * np.pi * np.arange(n // 2 + 1) / length
    lin = k**2 - nu * k**4
    g = -0.5j * k
    g[-1] = 0

    def rhs(_t: float, u: np.ndarray) -> np.ndarray:
        return np.fft.irfft(lin * np.fft.rfft(u) + g * np.fft.rfft(u * u), n=n)

    # The Jacobian of the linear part is circulant and the nonlinear part is 2 diag(u) D_x;
    # giving it exactly keeps the implicit solver from n finite-difference evaluations.
    eye = np.eye(n)
    lin_mat = np.fft.irfft(lin[:, None] * np.fft.rfft(eye, axis=0), n=n, axis=0)
    dx_mat = np.fft.irfft(2 * g[:, None] * np.fft.rfft(eye, axis=0), n=n, axis=0)

    def jac(_t: float, u: np.ndarray) -> np.ndarray:
        # N(u) = -(1/2) D u^2, so dN/du = -D diag(u); 2 g is the derivative's symbol -i k.
        return lin_mat + dx_mat * u[None, :]

    sol = solve_ivp(
        rhs,
        (0.0, float(t_eval[-1])),
        u0,
        method=method,
        t_eval=t_eval,
        rtol=rtol,
        atol=atol,
        jac=jac,
    )
    if not sol.success:
        raise RuntimeError(f"solve_ivp({method}) failed: {sol.message}")
    return sol.y.T


def config_to_dict(config: KSConfig) -> dict[str, Any]:
    """JSON-ready settings."""
    return asdict(config)


def config_from_dict(raw: dict[str, Any]) -> KSConfig:
    """Settings from `config_to_dict` output."""
    return replace(KSConfig(), **raw)

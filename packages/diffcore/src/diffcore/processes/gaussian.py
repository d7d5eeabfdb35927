r"""Gaussian forward processes ``x_t = alpha(t) x_0 + sigma(t) eps``.

Every process here is described by ``alpha(t)`` and ``sigma(t)``; from them follow the half
log-SNR ``lambda(t) = log(alpha / sigma)`` (the variable of DPM-Solver, Lu et al. 2022), the SDE
``dx = f(t) x dt + g(t) dW`` with ``f = alpha'/alpha`` and ``g^2 = (sigma^2)' - 2 f sigma^2``
(Kingma et al. 2021, eq. 17-18), and the probability-flow ODE velocity
``alpha' x_0 + sigma' eps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from ..tree import expand_like
from .base import Process

_BISECTION_STEPS = 100  # enough for float64 resolution of t from lambda


def _as_float_tensor(t: Tensor | float) -> Tensor:
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


@dataclass(frozen=True, kw_only=True)
class GaussianProcess(Process):
    """A process with Gaussian marginals ``N(alpha(t) x_0, sigma(t)^2 I)``.

    Subclasses define ``alpha`` and ``sigma``; closed-form derivatives and inverses are optional
    overrides (the defaults use autograd and bisection on the monotone ``lambda``).
    """

    variance_preserving: ClassVar[bool] = False

    def alpha(self, t: Tensor) -> Tensor:
        """The signal scale, elementwise on ``t``."""
        raise NotImplementedError

    def sigma(self, t: Tensor) -> Tensor:
        """The noise scale, elementwise on ``t``."""
        raise NotImplementedError

    # ---- derived quantities -------------------------------------------------------------
    def d_alpha(self, t: Tensor) -> Tensor:
        """D alpha / dt (autograd unless overridden)."""
        return _derivative(self.alpha, t)

    def d_sigma(self, t: Tensor) -> Tensor:
        """D sigma / dt (autograd unless overridden)."""
        return _derivative(self.sigma, t)

    def lambda_(self, t: Tensor) -> Tensor:
        """Half log-SNR ``log(alpha / sigma)``; +inf where sigma = 0."""
        t = _as_float_tensor(t)
        return torch.log(self.alpha(t)) - torch.log(self.sigma(t))

    def log_snr(self, t: Tensor) -> Tensor:
        """The log signal-to-noise ratio log(alpha^2 / sigma^2) = 2 lambda(t)."""
        return 2 * self.lambda_(t)

    def t_from_lambda(self, lam: Tensor) -> Tensor:
        """Inverse of ``lambda_`` (bisection on [t_min, t_max] unless overridden)."""
        lam = _as_float_tensor(lam)
        lo = torch.full_like(lam, self.t_min)
        hi = torch.full_like(lam, self.t_max)
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            above = self.lambda_(mid) > lam  # lambda decreases in t: the root is later
            lo = torch.where(above, mid, lo)
            hi = torch.where(above, hi, mid)
        return 0.5 * (lo + hi)

    def f(self, t: Tensor) -> Tensor:
        """The SDE drift coefficient alpha'(t) / alpha(t)."""
        t = _as_float_tensor(t)
        return self.d_alpha(t) / self.alpha(t)

    def g2(self, t: Tensor) -> Tensor:
        """Squared SDE diffusion g(t)^2 = 2 sigma (sigma' - f sigma)."""
        t = _as_float_tensor(t)
        s = self.sigma(t)
        return 2 * s * (self.d_sigma(t) - self.f(t) * s)

    def sde_drift(self, x: Tensor, t: Tensor) -> Tensor:
        """Forward SDE drift f(t) x for ``x`` (B, *S)."""
        return expand_like(self.f(t), x) * x

    def diffusion(self, t: Tensor) -> Tensor:
        """Forward SDE diffusion g(t)."""
        return torch.sqrt(self.g2(t).clamp_min(0.0))

    # ---- Process protocol ---------------------------------------------------------------
    def marginal(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """``alpha(t) x0 + sigma(t) eps`` for (B, *S) tensors and () or (B,) times."""
        t = _as_float_tensor(t)
        return expand_like(self.alpha(t), x0) * x0 + expand_like(self.sigma(t), x0) * eps

    def marginal_std(self, t: Tensor, data_std: Tensor | float = 1.0) -> Tensor:
        """Std of x_t when x_0 has per-dimension std ``data_std`` (and any mean)."""
        t = _as_float_tensor(t)
        return torch.sqrt(self.alpha(t) ** 2 * data_std**2 + self.sigma(t) ** 2)

    def sample_marginal(self, x0, t, *, generator=None):  # noqa: D102
        eps = self.noise_like(x0, generator=generator)
        return self.marginal(x0, t, eps), eps

    def prior_std(self) -> float:
        """Std of the prior N(0, prior_std^2) used at ``t_max`` (alpha(t_max) x_0 dropped)."""
        t = torch.tensor(self.t_max, dtype=torch.float64)
        return float(self.sigma(t))

    def prior_sample(self, like, *, generator=None):  # noqa: D102
        return self.prior_std() * self.noise_like(like, generator=generator)

    def prior_log_prob(self, x: Tensor) -> Tensor:
        """Log N(x; 0, prior_std^2 I) summed over all but the batch dim: (B, *S) -> (B,)."""
        s = self.prior_std()
        d = x[0].numel()
        sq = x.flatten(1).pow(2).sum(1)
        return -0.5 * sq / s**2 - d * (math.log(s) + 0.5 * math.log(2 * math.pi))


_MEMO_SIZE = 2048


def _memo(process: object, name: str, t: Tensor, compute) -> Tensor:
    """``compute(t)``, remembered per process for the last few time tensors.

    A step rule asks for alpha, sigma and lambda at the same few time tensors many times per
    step (and at the history's times on later steps); for table schedules each ask is an
    interpolation. Entries are keyed by the tensor object itself (held, so its id cannot be
    reused) and its version counter (so an in-place change invalidates them).
    """
    memo = process.__dict__.get("_memo_cache")
    if memo is None:
        memo = {}
        object.__setattr__(process, "_memo_cache", memo)
    if t.is_inference():  # no version counter to check: do not remember
        return compute(t)
    key = (name, id(t))
    hit = memo.get(key)
    if hit is not None and hit[0] is t and hit[1] == t._version:
        return hit[2]
    value = compute(t)
    if len(memo) >= _MEMO_SIZE:
        memo.pop(next(iter(memo)))
    memo[key] = (t, t._version, value)
    return value


def _derivative(fn, t: Tensor) -> Tensor:
    t = _as_float_tensor(t)
    with torch.enable_grad():
        tt = t.detach().clone().requires_grad_(True)
        y = fn(tt)
        if not y.requires_grad:  # constant in t
            return torch.zeros_like(t)
        (d,) = torch.autograd.grad(y.sum(), tt)
    return d


class _UnitTime:
    """Mixin: time runs over [0, 1]."""

    @property
    def t_min(self) -> float:
        """Data end."""
        return 0.0

    @property
    def t_max(self) -> float:
        """Prior end."""
        return 1.0


def _linear_vp_log_alpha(t: Tensor, beta_min: float, beta_max: float) -> Tensor:
    """Log alpha of the VP-SDE with linear beta: -(t^2 (b1 - b0) / 4 + t b0 / 2)."""
    return -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min


# ---- variance preserving ----------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class _VPBase(GaussianProcess):
    """VP processes: ``sigma = sqrt(1 - alpha^2)``; subclasses give ``log_alpha``."""

    variance_preserving: ClassVar[bool] = True

    def _log_alpha(self, t: Tensor) -> Tensor:
        """Log alpha(t), uncached: what subclasses implement."""
        raise NotImplementedError

    def log_alpha(self, t: Tensor) -> Tensor:
        """Log alpha(t), remembered for the last few time tensors (see :func:`_memo`)."""
        t = _as_float_tensor(t)
        return _memo(self, "log_alpha", t, self._log_alpha)

    def prefetch(self, times: list[Tensor]) -> None:
        """Compute alpha, sigma and lambda at every tensor of ``times`` at once, and remember.

        The sampling loop calls this with its grid's time tensors, so the steps find every
        coefficient ready instead of interpolating tables at every call.
        """
        if not times or 3 * len(times) > _MEMO_SIZE or any(t.is_inference() for t in times):
            return
        stacked = _as_float_tensor(torch.stack(times))
        for name, fn in (("alpha", self.alpha), ("sigma", self.sigma), ("lambda", self.lambda_)):
            for t, v in zip(times, fn(stacked).unbind(0), strict=True):
                _memo(self, name, t, lambda _u, v=v: v)

    def d_log_alpha(self, t: Tensor) -> Tensor:
        """D log alpha / dt."""
        return _derivative(self.log_alpha, t)

    def alpha(self, t):  # noqa: D102
        t = _as_float_tensor(t)
        return _memo(self, "alpha", t, lambda u: torch.exp(self.log_alpha(u)))

    def sigma(self, t):  # noqa: D102
        t = _as_float_tensor(t)
        return _memo(self, "sigma", t, lambda u: torch.sqrt(-torch.expm1(2 * self.log_alpha(u))))

    def lambda_(self, t):  # noqa: D102
        t = _as_float_tensor(t)

        def compute(u: Tensor) -> Tensor:
            la = self.log_alpha(u)
            return la - 0.5 * torch.log(-torch.expm1(2 * la))

        return _memo(self, "lambda", t, compute)

    def d_alpha(self, t):  # noqa: D102
        t = _as_float_tensor(t)
        return self.alpha(t) * self.d_log_alpha(t)

    def d_sigma(self, t):  # noqa: D102
        t = _as_float_tensor(t)
        a = self.alpha(t)
        return -a * self.d_alpha(t) / self.sigma(t)

    def f(self, t):  # noqa: D102
        return self.d_log_alpha(_as_float_tensor(t))

    def g2(self, t):  # noqa: D102
        # VP: g^2 = beta(t) = -2 d log alpha / dt.
        return -2 * self.d_log_alpha(_as_float_tensor(t))

    @staticmethod
    def _log_alpha_from_lambda(lam: Tensor) -> Tensor:
        # alpha^2 = 1 / (1 + exp(-2 lambda))
        return -0.5 * torch.nn.functional.softplus(-2 * lam)

    def prior_std(self) -> float:  # noqa: D102
        return 1.0


@dataclass(frozen=True, kw_only=True)
class LinearVP(_UnitTime, _VPBase):
    """VP-SDE with linear beta(t) = beta_min + t (beta_max - beta_min), t in [t_eps, 1].

    Song et al. 2021 (arXiv:2011.13456), eq. 11; defaults from their Table/appendix C
    (beta_min 0.1, beta_max 20), the continuous limit of DDPM's linear schedule.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_eps: float = field(default=1e-3)

    def _log_alpha(self, t):  # noqa: D102
        return _linear_vp_log_alpha(_as_float_tensor(t), self.beta_min, self.beta_max)

    def d_log_alpha(self, t):  # noqa: D102
        t = _as_float_tensor(t)
        return -0.5 * t * (self.beta_max - self.beta_min) - 0.5 * self.beta_min

    def t_from_lambda(self, lam):  # noqa: D102
        # Lu et al. 2022 (arXiv:2206.00927), appendix: closed-form inverse of lambda(t).
        lam = _as_float_tensor(lam)
        db = self.beta_max - self.beta_min
        tmp = 2 * db * torch.logaddexp(-2 * lam, torch.zeros_like(lam))
        return tmp / (torch.sqrt(self.beta_min**2 + tmp) + self.beta_min) / db


@dataclass(frozen=True, kw_only=True)
class CosineVP(_VPBase):
    """VP process with the cosine schedule (Nichol & Dhariwal 2021, arXiv:2102.09672, eq. 17).

    ``alpha(t) = cos((t + s)/(1 + s) pi/2) / cos(s/(1 + s) pi/2)``. ``t_max`` stops short of 1,
    where alpha reaches 0 (0.9946 as in DPM-Solver's continuous cosine schedule).
    """

    s: float = 0.008  # offset, sec. 3.2 of the same paper
    t_end: float = 0.9946

    @property
    def t_min(self) -> float:  # noqa: D102
        return 0.0

    @property
    def t_max(self) -> float:  # noqa: D102
        return self.t_end

    def _log_cos0(self) -> float:
        return math.log(math.cos(self.s / (1 + self.s) * math.pi / 2))

    def _log_alpha(self, t):  # noqa: D102
        t = _as_float_tensor(t)
        return torch.log(torch.cos((t + self.s) / (1 + self.s) * math.pi / 2)) - self._log_cos0()

    def d_log_alpha(self, t):  # noqa: D102
        t = _as_float_tensor(t)
        u = (t + self.s) / (1 + self.s) * math.pi / 2
        return -torch.tan(u) * math.pi / (2 * (1 + self.s))

    def t_from_lambda(self, lam):  # noqa: D102
        la = self._log_alpha_from_lambda(_as_float_tensor(lam))
        return 2 * (1 + self.s) / math.pi * torch.arccos(torch.exp(la + self._log_cos0())) - self.s


@dataclass(frozen=True, kw_only=True, eq=False)
class DiscreteVP(_UnitTime, _VPBase):
    """A discrete DDPM table made continuous: log alpha-bar interpolated linearly in t.

    Step ``n`` (0-based, of ``N``) sits at ``t = (n + 1) / N``, as in DPM-Solver's discrete
    schedule (Lu et al. 2022, appendix D); t = 0 is clean data (alpha = 1).

    Args:
        alphas_cumprod: (N,) the table ``alpha_bar_n`` of the discrete model.
    """

    alphas_cumprod: Tensor

    def __post_init__(self) -> None:
        ac = torch.as_tensor(self.alphas_cumprod, dtype=torch.float64)
        if ac.ndim != 1 or len(ac) < 2:
            raise ValueError(f"`alphas_cumprod` must be a 1-D table, got shape {tuple(ac.shape)}")
        if not bool(((ac > 0) & (ac < 1)).all()) or not bool((ac[1:] < ac[:-1]).all()):
            raise ValueError("`alphas_cumprod` must be strictly decreasing inside (0, 1)")
        object.__setattr__(self, "alphas_cumprod", ac)
        n = len(ac)
        ts = torch.arange(0, n + 1, dtype=torch.float64) / n
        la = torch.cat([torch.zeros(1, dtype=torch.float64), 0.5 * torch.log(ac)])
        object.__setattr__(self, "_knot_cache", {(ts.device, ts.dtype): (ts, la)})

    @classmethod
    def linear(cls, n: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2) -> DiscreteVP:
        """DDPM's linear beta table (Ho et al. 2020, arXiv:2006.11239, sec. 4)."""
        betas = torch.linspace(beta_start, beta_end, n, dtype=torch.float64)
        return cls(alphas_cumprod=torch.cumprod(1 - betas, 0))

    @classmethod
    def scaled_linear(
        cls, n: int = 1000, beta_start: float = 8.5e-4, beta_end: float = 1.2e-2
    ) -> DiscreteVP:
        """Stable Diffusion's "scaled linear" table (linear in sqrt(beta))."""
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float64) ** 2
        return cls(alphas_cumprod=torch.cumprod(1 - betas, 0))

    @property
    def n_steps(self) -> int:
        """Number of entries N of the table."""
        return len(self.alphas_cumprod)

    def _knots(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """Knot times and log alpha (N + 1,), cached per device and dtype."""
        cache = self._knot_cache  # type: ignore[attr-defined]
        key = (like.device, like.dtype)
        if key not in cache:
            ts, la = cache[(torch.device("cpu"), torch.float64)]
            cache[key] = (ts.to(like.device, like.dtype), la.to(like.device, like.dtype))
        return cache[key]

    def _log_alpha(self, t):  # noqa: D102
        t = _as_float_tensor(t)
        ts, la = self._knots(t)
        return _interp(t, ts, la)

    def d_log_alpha(self, t):  # noqa: D102
        t = _as_float_tensor(t)
        ts, la = self._knots(t)
        idx = torch.searchsorted(ts, t.clamp(ts[0], ts[-1]).contiguous(), right=True) - 1
        idx = idx.clamp(0, len(ts) - 2)
        return (la[idx + 1] - la[idx]) / (ts[idx + 1] - ts[idx])

    def t_from_lambda(self, lam):  # noqa: D102
        lam = _as_float_tensor(lam)
        ts, la = self._knots(lam)
        # log alpha is linear between knots, so invert log alpha rather than lambda.
        return _interp(-self._log_alpha_from_lambda(lam), -la, ts)

    def timestep_to_t(self, n: Tensor) -> Tensor:
        """Discrete step index n (0..N-1) -> continuous t = (n + 1) / N."""
        return (torch.as_tensor(n, dtype=torch.float64) + 1) / self.n_steps

    def t_to_timestep(self, t: Tensor) -> Tensor:
        """Continuous t -> the (fractional) discrete step index ``t N - 1`` a network expects."""
        return _as_float_tensor(t) * self.n_steps - 1


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation with linear extrapolation; ``xp`` increasing."""
    flat = x.reshape(-1).contiguous()
    idx = (torch.searchsorted(xp, flat, right=True) - 1).clamp(0, len(xp) - 2)
    x0, x1, f0, f1 = xp[idx], xp[idx + 1], fp[idx], fp[idx + 1]
    return (f0 + (f1 - f0) * (flat - x0) / (x1 - x0)).reshape(x.shape)


@dataclass(frozen=True, kw_only=True)
class SubVP(_UnitTime, GaussianProcess):
    """The sub-VP SDE.

    sub-VP SDE (Song et al. 2021, arXiv:2011.13456, eq. 12): alpha as linear VP,
    ``sigma = 1 - alpha^2``; its variance stays below VP's.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def _log_alpha(self, t: Tensor) -> Tensor:
        return _linear_vp_log_alpha(t, self.beta_min, self.beta_max)

    def alpha(self, t):  # noqa: D102
        return torch.exp(self._log_alpha(_as_float_tensor(t)))

    def sigma(self, t):  # noqa: D102
        return -torch.expm1(2 * self._log_alpha(_as_float_tensor(t)))

    def d_alpha(self, t):  # noqa: D102
        t = _as_float_tensor(t)
        return self.alpha(t) * (-0.5 * t * (self.beta_max - self.beta_min) - 0.5 * self.beta_min)

    def d_sigma(self, t):  # noqa: D102
        t = _as_float_tensor(t)
        return -2 * self.alpha(t) * self.d_alpha(t)


# ---- variance exploding and EDM ---------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class VE(_UnitTime, GaussianProcess):
    """The variance-exploding SDE.

    VE-SDE (Song et al. 2021, arXiv:2011.13456, eq. 9): alpha = 1,
    ``sigma(t) = sigma_min (sigma_max / sigma_min)^t`` for t in [0, 1].
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def alpha(self, t):  # noqa: D102
        return torch.ones_like(_as_float_tensor(t))

    def sigma(self, t):  # noqa: D102
        t = _as_float_tensor(t)
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def d_alpha(self, t):  # noqa: D102
        return torch.zeros_like(_as_float_tensor(t))

    def d_sigma(self, t):  # noqa: D102
        return self.sigma(t) * math.log(self.sigma_max / self.sigma_min)

    def t_from_lambda(self, lam):  # noqa: D102
        lam = _as_float_tensor(lam)
        return (-lam - math.log(self.sigma_min)) / math.log(self.sigma_max / self.sigma_min)


@dataclass(frozen=True, kw_only=True)
class EDM(GaussianProcess):
    """The EDM parameterisation (Karras et al. 2022, arXiv:2206.00364): alpha = 1, sigma = t.

    Time *is* the noise level, in [0, sigma_max]; ``sigma_min`` is where samplers stop before
    the final step to 0. Defaults from Table 1 of the paper.
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5

    @property
    def t_min(self) -> float:  # noqa: D102
        return 0.0

    @property
    def t_max(self) -> float:  # noqa: D102
        return self.sigma_max

    def alpha(self, t):  # noqa: D102
        return torch.ones_like(_as_float_tensor(t))

    def sigma(self, t):  # noqa: D102
        return _as_float_tensor(t).clone()

    def d_alpha(self, t):  # noqa: D102
        return torch.zeros_like(_as_float_tensor(t))

    def d_sigma(self, t):  # noqa: D102
        return torch.ones_like(_as_float_tensor(t))

    def t_from_lambda(self, lam):  # noqa: D102
        return torch.exp(-_as_float_tensor(lam))


@dataclass(frozen=True, kw_only=True)
class RectifiedFlow(_UnitTime, GaussianProcess):
    """Rectified flow: the linear interpolant to Gaussian noise.

    Linear interpolant / rectified flow (Liu et al. 2022, arXiv:2209.03003; Lipman et al.
    2022): ``x_t = (1 - t) x_0 + t eps`` for t in [0, 1], velocity ``eps - x_0``.
    """

    def alpha(self, t):  # noqa: D102
        return 1 - _as_float_tensor(t)

    def sigma(self, t):  # noqa: D102
        return _as_float_tensor(t).clone()

    def d_alpha(self, t):  # noqa: D102
        return -torch.ones_like(_as_float_tensor(t))

    def d_sigma(self, t):  # noqa: D102
        return torch.ones_like(_as_float_tensor(t))

    def t_from_lambda(self, lam):  # noqa: D102
        return torch.sigmoid(-_as_float_tensor(lam))

    def prior_std(self) -> float:  # noqa: D102
        return 1.0

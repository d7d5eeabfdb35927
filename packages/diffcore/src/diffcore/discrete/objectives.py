r"""Continuous-time ELBOs of discrete diffusion: masked (MDLM) and uniform (CTMC / UDLM).

Both objectives are frozen dataclasses with ``per_sample(model, x0, ...)`` -> (B,) negative
ELBO in nats per sequence, a one-sample Monte-Carlo estimate over ``t ~ U[t_eps, 1]`` and
``x_t ~ q(x_t | x_0)`` (both may be given instead), and ``loss(...)`` -> the scalar NELBO per
token (summed over the batch, divided by the number of counted tokens), what MDLM and SEDD
report. ``mask`` (B, L) bool keeps padded positions out of the sum: a False position is still
corrupted and still seen by the network, but adds nothing to the loss.

Masked diffusion (Sahoo et al. 2024, MDLM, arXiv:2406.07524; Shi et al. 2024, MD4):

    NELBO(x0) = int_0^1 w(t) E_{x_t}[ sum_{l: x_t^l = m} -log p(x0^l | x_t) ] dt,
    w(t) = -alpha'_t / (1 - alpha_t),

with the SUBS parameterisation; it is exact (no prior term) when ``alpha(1) = 0``.

Uniform diffusion: the general CTMC ELBO (Campbell et al. 2022, arXiv:2205.14987), written as
SEDD's diffusion-weighted score entropy (Lou et al. 2024, arXiv:2310.16834), per position:

    int_0^1 E_{x_t} sum_{y != x_t} Q_t[y, x_t] ( s_y - r_y log s_y + r_y log r_y - r_y ) dt
        + KL( q(x_1 | x0) || uniform ),

with ``r_y = q_t(y | x0) / q_t(x_t | x0)`` the true ratio and ``s_y`` the model's ratio
``sum_i p(x0 = i | x_t) q_t(y | i) / q_t(x_t | i)``. Each bracket is a Bregman divergence, >= 0,
and 0 when ``s = r``. This is the continuous-time limit that UDLM (Schiff et al. 2024,
arXiv:2412.10193) writes in closed form for uniform noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .denoiser import as_denoiser
from .processes import DiscreteProcess, MaskedProcess, UniformProcess

__all__ = ["MaskedDiffusionELBO", "UniformDiffusionELBO"]

_T_GUARD = 1e-5  # smallest training time: the masked weight 1/t is singular at 0
_TINY = 1e-30  # keeps the weight finite at t = 0, where no position is masked anyway


def _check_mask(mask: Tensor | None, x0: Tensor) -> Tensor:
    if mask is None:
        return torch.ones(x0.shape, dtype=torch.bool, device=x0.device)
    if mask.shape != x0.shape:
        raise ValueError(
            f"`mask` must have the shape of `x0` (B, L) = {tuple(x0.shape)}, "
            f"got {tuple(mask.shape)}."
        )
    return mask.bool()


@dataclass(frozen=True)
class _ELBO:
    """Shared time sampling, argument checks and reduction.

    Attributes:
        process: the discrete process.
        t_eps: smallest training time (the integral is estimated on [t_eps, 1]).
        antithetic: stratify the batch's times, ``t_i = (u + i / B) mod 1`` (MDLM's
            low-discrepancy sampler), which lowers the variance of the batch mean.
    """

    process: DiscreteProcess
    t_eps: float = _T_GUARD
    antithetic: bool = True

    def _times(self, batch: int, generator: torch.Generator | None, device) -> Tensor:
        u = torch.rand(
            () if self.antithetic else (batch,),
            generator=generator,
            dtype=torch.float64,
            device=device,
        )
        if self.antithetic:
            u = (u + torch.arange(batch, dtype=torch.float64, device=device) / batch) % 1.0
        return self.t_eps + (1.0 - self.t_eps) * u

    def _prepare(
        self,
        x0: Tensor,
        t: Tensor | float | None,
        x_t: Tensor | None,
        mask: Tensor | None,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x0 = self.process.check_tokens(x0, "x0", allow_mask=False)
        batch = x0.shape[0]
        if t is None:
            t = self._times(batch, generator, x0.device)
        t = self.process.check_time(t).to(x0.device)
        t = t.expand(batch) if t.ndim == 0 else t
        if t.shape != (batch,):
            raise ValueError(f"`t` must be a scalar or (B,) = ({batch},), got {tuple(t.shape)}.")
        if x_t is None:
            x_t, _ = self.process.sample_marginal(x0, t, generator=generator)
        x_t = self.process.check_tokens(x_t, "x_t")
        if x_t.shape != x0.shape:
            raise ValueError(
                f"`x_t` must have the shape of `x0` {tuple(x0.shape)}, got {tuple(x_t.shape)}."
            )
        return x0, t, x_t, _check_mask(mask, x0)

    def per_sample(
        self,
        model: Any,
        x0: Tensor,
        *,
        t: Tensor | float | None = None,
        x_t: Tensor | None = None,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One-sample estimate of the negative ELBO of each sequence, in nats.

        Args:
            model: a :class:`~diffcore.discrete.DiscreteDenoiser` or a bare network
                ``net(x_t, t) -> (B, L, V) logits``.
            x0: (B, L) clean token ids.
            t: () or (B,) times; drawn from ``generator`` when None.
            x_t: (B, L) noisy states at ``t``; drawn from ``q(x_t | x0)`` when None.
            mask: (B, L) bool, True for positions that count (False: padding).
            generator: source of ``t`` and ``x_t``.

        Returns:
            (B,) NELBO estimates; their expectation is the NELBO of each ``x0``.
        """
        x0, t, x_t, keep = self._prepare(x0, t, x_t, mask, generator)
        denoiser = as_denoiser(model, self.process)
        logp = denoiser(x_t, t)
        return self._integrand(logp, x0, x_t, t, keep) + self._prior_term(x0, keep, logp)

    def loss(
        self,
        model: Any,
        x0: Tensor,
        *,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
        t: Tensor | float | None = None,
        x_t: Tensor | None = None,
    ) -> Tensor:
        """The batch NELBO per counted token (nats), a scalar to minimise."""
        values = self.per_sample(model, x0, t=t, x_t=x_t, mask=mask, generator=generator)
        tokens = _check_mask(mask, x0).sum().clamp_min(1)
        return values.sum() / tokens

    def _integrand(self, logp: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, keep: Tensor) -> Tensor:
        raise NotImplementedError

    def _prior_term(self, x0: Tensor, keep: Tensor, like: Tensor) -> Tensor:
        return torch.zeros(x0.shape[0], dtype=like.dtype, device=like.device)


@dataclass(frozen=True)
class MaskedDiffusionELBO(_ELBO):
    """MDLM's continuous-time NELBO: weighted cross-entropy on the masked positions.

    The weight ``-alpha'_t / (1 - alpha_t)`` is ``1/t`` for the log-linear schedule. The
    prior term ``KL(q(x_1 | x0) || all-mask)`` is left out, as in MDLM; it is zero (and the
    bound exact) when ``alpha(1) = 0``, e.g. ``LogLinearSchedule(eps=0)``.

    >>> from diffcore.discrete import MaskedProcess
    >>> elbo = MaskedDiffusionELBO(MaskedProcess(vocab_size=3))
    >>> net = lambda x, t: torch.zeros(*x.shape, 3)
    >>> x0 = torch.zeros(4, 8, dtype=torch.long)
    >>> elbo.loss(net, x0, generator=torch.Generator().manual_seed(0)).item() > 0
    True
    """

    process: MaskedProcess

    def __post_init__(self) -> None:
        if not isinstance(self.process, MaskedProcess):
            raise TypeError(
                f"MaskedDiffusionELBO needs a MaskedProcess, got {type(self.process).__name__}; "
                "use UniformDiffusionELBO for UniformProcess."
            )

    def _integrand(  # noqa: D102
        self, logp: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, keep: Tensor
    ) -> Tensor:
        sched = self.process.schedule
        weight = (-sched.d_alpha(t) / (1 - sched.alpha(t)).clamp_min(_TINY)).to(logp.dtype)
        nll = -logp.gather(-1, x0[..., None]).squeeze(-1)
        counted = keep & (x_t == self.process.mask_id)
        nll = torch.where(counted, nll, torch.zeros_like(nll))  # carried tokens: -log 1 = 0
        return weight * nll.sum(-1)


@dataclass(frozen=True)
class UniformDiffusionELBO(_ELBO):
    """Continuous-time NELBO of uniform diffusion (CTMC ELBO in score-entropy form), per sequence.

    Includes the prior term ``KL(q(x_1 | x0) || uniform)``, so the bound holds for any schedule.

    >>> from diffcore.discrete import UniformProcess
    >>> elbo = UniformDiffusionELBO(UniformProcess(vocab_size=3))
    >>> net = lambda x, t: torch.zeros(*x.shape, 3)
    >>> x0 = torch.zeros(4, 8, dtype=torch.long)
    >>> elbo.loss(net, x0, generator=torch.Generator().manual_seed(0)).item() > 0
    True
    """

    process: UniformProcess

    def __post_init__(self) -> None:
        if not isinstance(self.process, UniformProcess):
            raise TypeError(
                f"UniformDiffusionELBO needs a UniformProcess, got {type(self.process).__name__}; "
                "use MaskedDiffusionELBO for MaskedProcess."
            )

    def _integrand(  # noqa: D102
        self, logp: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, keep: Tensor
    ) -> Tensor:
        v = self.process.vocab_size
        sched = self.process.schedule
        t64 = t.to(torch.float64)
        a = sched.alpha(t64)
        # q_t(y | i) = a [y = i] + b with b = (1 - a) / V; logs in float64, then cast
        log_a, log_b = torch.log(a), torch.log1p(-a) - math.log(v)
        log_ab = torch.log(a + (1 - a) / v)
        log_a, log_b, log_ab = (c.to(logp.dtype)[:, None, None] for c in (log_a, log_b, log_ab))
        cur = torch.nn.functional.one_hot(x_t, v).bool()
        # log s_y = log( a w_y + b sum_i w_i ),  w_i = p_i / q_t(x_t | i)
        log_w = logp - torch.where(cur, log_ab, log_b)
        log_s = torch.logaddexp(log_a + log_w, log_b + torch.logsumexp(log_w, -1, keepdim=True))
        # log r_y = log q_t(y | x0) - log q_t(x_t | x0)
        log_r = torch.where(torch.nn.functional.one_hot(x0, v).bool(), log_ab, log_b)
        log_r = log_r - log_r.gather(-1, x_t[..., None])
        # s - r log s + r log r - r = r (e^d - 1 - d), d = log s - log r: no cancellation
        d = log_s - log_r
        bregman = log_r.exp() * (torch.expm1(d) - d)
        bregman = torch.where(cur, torch.zeros_like(bregman), bregman)  # y != x_t only
        beta = sched.rate(t64).to(logp.dtype)[:, None]
        per_pos = beta / v * bregman.sum(-1)
        return torch.where(keep, per_pos, torch.zeros_like(per_pos)).sum(-1)

    def _prior_term(self, x0: Tensor, keep: Tensor, like: Tensor) -> Tensor:  # noqa: D102
        v = self.process.vocab_size
        a1 = self.process.schedule.alpha(torch.tensor(1.0, dtype=torch.float64))
        q_hit, q_miss = a1 + (1 - a1) / v, (1 - a1) / v
        kl = q_hit * torch.log(v * q_hit)
        if q_miss > 0:
            kl = kl + (v - 1) * q_miss * torch.log(v * q_miss)
        per_seq = keep.sum(-1).to(torch.float64) * kl
        return per_seq.to(device=like.device, dtype=like.dtype)

r"""Importance sampling with a sequence-level energy (EDLM).

A diffusion network predicts ``p(x0 | x_t)`` one position at a time, so within a step the
positions are drawn independently. EDLM (Xu et al. 2024, arXiv:2410.21357) corrects
this with an energy over whole sequences, ``p(x0 | x_t) ∝ prod_l p_theta(x0^l | x_t)
exp(-E(x0, x_t, t))``, and samples it by self-normalised importance sampling: draw candidates
from the factorised proposal, weight each by ``exp(-E)``, resample one, then take the exact
posterior step ``q(x_s | x_t, x0)`` towards it. With an energy equal to the log-ratio of the
true joint posterior to the proposal the step is exact as the number of candidates grows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..samplers.base import StepRule
from ._random import categorical
from .samplers import _process

__all__ = ["EnergyAncestral", "importance_resample"]

Energy = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``energy(x0, x_t, t) -> (N,)`` for (N, L) candidates, (N, L) states and (N,) times."""


def importance_resample(
    x0_probs: Tensor,
    x_t: Tensor,
    t: Tensor,
    energy: Energy,
    num_candidates: int,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw ``num_candidates`` sequences from the factorised ``x0_probs``, resample one by exp(-E).

    Args:
        x0_probs: (B, L, V) proposal probabilities of each position.
        x_t: (B, L) current states (handed to the energy).
        t: () or (B,) current times.
        energy: ``energy(x0, x_t, t)`` -> (N,) energies of (N, L) candidates, N = n B.
        num_candidates: n, candidates per sequence.
        generator: source of the candidates and of the resampling.

    Returns:
        (B, L) the resampled clean sequences.
    """
    if num_candidates < 1:
        raise ValueError(f"`num_candidates` must be >= 1, got {num_candidates}.")
    b, length, _ = x0_probs.shape
    n = num_candidates
    cands = categorical(x0_probs, generator, num_samples=n)  # (n, B, L)
    t = torch.as_tensor(t, device=x_t.device)
    t_rep = (t.expand(b) if t.ndim == 0 else t).repeat(n)
    e = energy(cands.reshape(n * b, length), x_t.repeat(n, 1), t_rep)
    if not isinstance(e, Tensor) or e.shape != (n * b,):
        got = tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__
        raise ValueError(f"`energy` must return shape (N,) = ({n * b},), got {got}.")
    if not bool(torch.isfinite(e).all()):
        raise FloatingPointError("`energy` returned non-finite values.")
    weights = torch.softmax(-e.reshape(n, b).to(torch.float64), dim=0)  # self-normalised
    pick = categorical(weights.T, generator)  # (B,)
    return cands[pick, torch.arange(b, device=cands.device)]


@dataclass(frozen=True)
class EnergyAncestral(StepRule):
    """Ancestral step towards an ``x0`` resampled by energy-weighted importance sampling.

    Inside ``window`` (EDLM applies the energy at the noisier steps only) each sequence draws
    ``num_candidates`` x0 candidates from the network's factorised proposal and keeps one in
    proportion to ``exp(-energy)``; the step then draws ``x_s ~ q(x_s | x_t, x0)``. Outside the
    window it is the plain :class:`~diffcore.discrete.Ancestral` step.

    Attributes:
        energy: ``energy(x0, x_t, t) -> (N,)``.
        num_candidates: candidates per sequence and step.
        window: ``(t_lo, t_hi)``: importance-sample when ``t_lo < t0 <= t_hi``.
    """

    stochastic: ClassVar[bool] = True
    energy: Energy
    num_candidates: int = 16
    window: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.num_candidates < 1:
            raise ValueError(f"`num_candidates` must be >= 1, got {self.num_candidates}.")
        lo, hi = self.window
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"`window` must satisfy 0 <= t_lo < t_hi <= 1, got {self.window}.")

    def step(  # noqa: D102
        self, model, x, t0, t1, state, *, generator: torch.Generator | None = None
    ):
        process = _process(model)
        probs = model.probs(x, t0)
        t0 = torch.as_tensor(t0)
        lo, hi = self.window
        active = (t0 > lo) & (t0 <= hi)
        active = active.expand(x.shape[0]) if active.ndim == 0 else active
        if bool(active.any()):
            x0 = importance_resample(
                probs, x, t0, self.energy, self.num_candidates, generator=generator
            )
            hard = torch.nn.functional.one_hot(x0, process.vocab_size).to(probs.dtype)
            probs = torch.where(active.to(x.device)[:, None, None], hard, probs)
        return categorical(process.posterior_probs(x, probs, t1, t0), generator), state

"""Step rules of discrete diffusion for the core :func:`diffcore.samplers.sample` loop.

The loop fits discrete states as they are: it threads a LongTensor (B, L) through
``rule.step(model, x, t0, t1, state, generator=...)``, owns the progress bar, callbacks,
per-sample (n + 1, B) grids and trajectories, and its ``process.project`` and finiteness checks
are no-ops on token ids. ``model`` is a :class:`~diffcore.discrete.DiscreteDenoiser` (it carries
``process`` and counts ``nfe``); grids come from :func:`diffcore.samplers.uniform_t` or any
decreasing times in [0, 1] ending at 0. Start from ``process.prior_sample(x_like)``.

>>> import torch
>>> from diffcore.samplers import sample, uniform_t
>>> from diffcore.discrete import Ancestral, DiscreteDenoiser, MaskedProcess
>>> proc = MaskedProcess(vocab_size=3)
>>> model = DiscreteDenoiser(lambda x, t: torch.zeros(*x.shape, 3), proc)
>>> x1 = proc.prior_sample(torch.empty(2, 5, dtype=torch.long))
>>> out = sample(model, x1, uniform_t(proc, 8), Ancestral(), progress=False,
...              generator=torch.Generator().manual_seed(0))
>>> bool((out.x < 3).all()), out.nfe
(True, 8)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..samplers.base import StepRule
from ._random import categorical, gumbel_like
from .processes import DiscreteProcess, MaskedProcess

__all__ = ["Ancestral", "GreedyUnmask", "TauLeaping"]


def _process(model: Any) -> DiscreteProcess:
    process = getattr(model, "process", None)
    if not isinstance(process, DiscreteProcess):
        raise TypeError(
            "discrete step rules need a DiscreteDenoiser (a model whose `.process` is a "
            f"DiscreteProcess), got a model with process {type(process).__name__}."
        )
    return process


def _final(process: DiscreteProcess, t1: Tensor, batch: int, device) -> Tensor:
    """(B,) bool: which samples end this step at the data end t_min."""
    done = torch.as_tensor(t1, device=device) <= process.t_min
    return done.expand(batch) if done.ndim == 0 else done


@dataclass(frozen=True)
class Ancestral(StepRule):
    """Exact-posterior step: ``x_s ~ sum_{x0} p(x0 | x_t) q(x_s | x_t, x0)`` per position.

    D3PM's ancestral sampler (Austin et al. 2021, arXiv:2107.03006), MDLM's sampler
    for the masked process (Sahoo et al. 2024). A step to t = 0 draws ``x0`` itself.
    Positions are drawn independently given ``x_t``, so the joint error vanishes as the steps
    shrink (with exact conditionals, only positions changing in the same step are affected).
    """

    stochastic: ClassVar[bool] = True

    def step(  # noqa: D102
        self, model, x, t0, t1, state, *, generator: torch.Generator | None = None
    ):
        process = _process(model)
        probs = model.probs(x, t0)
        return categorical(process.posterior_probs(x, probs, t1, t0), generator), state


@dataclass(frozen=True)
class TauLeaping(StepRule):
    """Tau-leaping: Poisson numbers of jumps from the reverse rate matrix, held fixed over a step.

    Campbell et al. 2022 (arXiv:2205.14987): in each position and for each target
    state j, the number of jumps in ``[t1, t0]`` is Poisson with mean ``R_{t0}(x -> j) (t0 -
    t1)``. Tokens are categories, so jumps cannot be added: a position moves when exactly one
    jump was drawn and stays otherwise (a rejected multi-jump). Rates come from
    :meth:`~diffcore.discrete.processes.DiscreteProcess.reverse_rates`.

    Attributes:
        denoise_last: on a step ending at t = 0, draw ``x0 ~ p(x0 | x_t)`` (the exact
            posterior step) instead of leaping; otherwise positions still masked at the end
            stay masked.
    """

    stochastic: ClassVar[bool] = True
    denoise_last: bool = True

    def step(  # noqa: D102
        self, model, x, t0, t1, state, *, generator: torch.Generator | None = None
    ):
        process = _process(model)
        probs = model.probs(x, t0)
        rates = process.reverse_rates(x, probs, t0)
        dt = torch.as_tensor(t0 - t1, device=x.device).to(rates.dtype)
        dt = dt.reshape(-1, 1, 1) if dt.ndim else dt
        counts = torch.poisson(rates * dt, generator=generator)
        one_jump = counts.sum(-1) == 1
        x_new = torch.where(one_jump, counts.argmax(-1), x)
        final = _final(process, t1, x.shape[0], x.device)
        if self.denoise_last and bool(final.any()):
            post = categorical(process.posterior_probs(x, probs, t1, t0), generator)
            x_new = torch.where(final[:, None], post, x_new)
        return x_new, state


@dataclass(frozen=True)
class GreedyUnmask(StepRule):
    """Confidence-ordered unmasking (MaskGIT, Chang et al. 2022, arXiv:2202.04200).

    At each step every masked position proposes a token (the argmax, or a draw at
    ``temperature``); the most confident proposals are kept and the rest stay masked, so that
    ``round(L (1 - alpha(t1)))`` positions remain masked (at least one is unmasked per step,
    all at t1 = 0). Unmasked tokens never change. Masked process only.

    Attributes:
        temperature: 0 for argmax proposals (deterministic); > 0 draws proposals from
            ``softmax(log p / temperature)``.
        per_step: unmask exactly this many positions per step instead of following the
            schedule (all remaining ones on the last step).
        confidence_noise: scale of Gumbel noise added to the log-confidences before ranking
            (MaskGIT's randomised selection); 0 ranks by confidence alone.
    """

    stochastic: ClassVar[bool] = True
    temperature: float = 0.0
    per_step: int | None = None
    confidence_noise: float = 0.0

    def __post_init__(self) -> None:
        if self.temperature < 0 or self.confidence_noise < 0:
            raise ValueError(
                f"`temperature` and `confidence_noise` must be >= 0, got {self.temperature} "
                f"and {self.confidence_noise}."
            )
        if self.per_step is not None and self.per_step < 1:
            raise ValueError(f"`per_step` must be a positive int, got {self.per_step}.")

    def step(  # noqa: D102
        self, model, x, t0, t1, state, *, generator: torch.Generator | None = None
    ):
        process = _process(model)
        if not isinstance(process, MaskedProcess):
            raise TypeError(
                f"GreedyUnmask unmasks tokens and needs a MaskedProcess, got "
                f"{type(process).__name__}; use Ancestral or TauLeaping."
            )
        logp = model(x, t0)
        if self.temperature == 0:
            conf, tokens = logp.max(-1)
        else:
            tokens = categorical((logp / self.temperature).softmax(-1), generator)
            conf = logp.gather(-1, tokens[..., None]).squeeze(-1)
        if self.confidence_noise > 0:
            conf = conf + self.confidence_noise * gumbel_like(conf, generator)
        masked = x == process.mask_id
        n_masked = masked.sum(-1)
        final = _final(process, t1, x.shape[0], x.device)
        if self.per_step is not None:
            k = torch.full_like(n_masked, self.per_step)
        else:
            frac = 1 - process.schedule.alpha(torch.as_tensor(t1, dtype=torch.float64))
            target = torch.round(x.shape[1] * frac.to(x.device)).long()
            k = (n_masked - target).clamp_min(1)
        k = torch.where(final, n_masked, k.expand_as(n_masked))
        conf = torch.where(masked, conf, torch.full_like(conf, float("-inf")))
        rank = conf.argsort(dim=-1, descending=True, stable=True).argsort(dim=-1)
        chosen = masked & (rank < k[:, None])
        return torch.where(chosen, tokens, x), state

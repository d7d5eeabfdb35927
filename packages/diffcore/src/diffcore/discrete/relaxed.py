"""Differentiable sampling trajectories for reward fine-tuning (DRAKES).

DRAKES (Wang et al. 2024, arXiv:2410.13643) fine-tunes a masked diffusion model by
backpropagating a differentiable reward through its own sampling trajectory. The token drawn
when a position is unmasked, ``x0 ~ p(x0 | x_t)``, becomes a Gumbel-softmax sample (Jang et al.
2017, arXiv:1611.01144; Maddison et al. 2017, arXiv:1611.00712): states become (B, L, K) soft
one-hot vectors, the network reads them through its embedding matrix, and the gradient flows
from the final sample back to the parameters. With ``straight_through`` the forward pass is an
exact categorical draw (the Gumbel-max trick) and only the backward pass uses the relaxation.
Truncated backpropagation keeps the graph of the last ``grad_steps`` steps only, which bounds
memory and, as DRAKES notes, is usually enough.

:func:`relaxed_sample` runs the core :func:`diffcore.samplers.sample` loop twice, first
without gradients and then with them for the last steps, so progress bars, callbacks and the
generator behave as for any other sampler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..samplers.base import StepRule
from ..samplers.loop import sample
from ._random import gumbel_like
from .processes import MaskedProcess

__all__ = ["GumbelAncestral", "relaxed_sample"]


def _safe_log(p: Tensor) -> Tensor:
    """Elementwise log with -inf (and zero gradient) where p == 0."""
    pos = p > 0
    return torch.where(pos, torch.log(torch.where(pos, p, torch.ones_like(p))), float("-inf"))


@dataclass(frozen=True)
class GumbelAncestral(StepRule):
    """Ancestral step of masked diffusion with a Gumbel-softmax (optionally straight-through) draw.

    States are (B, L, K) soft one-hot vectors (a LongTensor start is one-hot encoded in the
    default float dtype). A masked position stays masked with probability ``stay = (1 -
    alpha_s) / (1 - alpha_t)``, which does not depend on the network, so that choice is drawn
    exactly; otherwise it becomes a relaxed draw ``y`` from ``p(x0 | x_t)`` over the V tokens
    (relaxing only the token keeps the small unmasking probability from diluting the
    relaxation, which biases the gradient). Positions whose state's argmax is a token are
    copied unchanged (gradients pass through). Gradients reach the parameters through ``y``
    at the step where a position is unmasked and through the network's soft inputs later.

    Attributes:
        temperature: Gumbel-softmax temperature tau (> 0); the relaxation sharpens as tau -> 0.
        straight_through: forward the hard one-hot ``argmax`` (an exact draw), backward through
            the soft sample.
    """

    stochastic: ClassVar[bool] = True
    temperature: float = 1.0
    straight_through: bool = True

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {self.temperature}.")

    def step(  # noqa: D102
        self, model, x, t0, t1, state, *, generator: torch.Generator | None = None
    ):
        process = getattr(model, "process", None)
        if not isinstance(process, MaskedProcess):
            raise TypeError(
                "GumbelAncestral relaxes masked diffusion and needs a DiscreteDenoiser of a "
                f"MaskedProcess, got process {type(process).__name__}."
            )
        if not x.is_floating_point():
            x = torch.nn.functional.one_hot(process.check_tokens(x), process.num_states)
            x = x.to(torch.get_default_dtype())
        # A masked position is unmasked with probability 1 - stay, stay = (1 - a_s)/(1 - a_t),
        # which does not depend on the network (SUBS): that choice is drawn exactly and only
        # the token, x0 ~ p(x0 | x_t) (the SUBS output as if masked), is relaxed.
        masked = torch.full(x.shape[:2], process.mask_id, dtype=torch.long, device=x.device)
        probs = process.x0_probs(model.logits(x, t0), masked)
        a_s, a_t = process.alpha(t1).to(x.device), process.alpha(t0).to(x.device)
        stay = ((1 - a_s) / (1 - a_t)).clamp(0.0, 1.0).to(torch.float64)
        u = torch.rand(x.shape[:2], generator=generator, device=x.device, dtype=torch.float64)
        unmask = (u >= (stay[:, None] if stay.ndim else stay)).to(x.dtype)[..., None]
        logits = (_safe_log(probs) + gumbel_like(probs, generator)) / self.temperature
        y = logits.softmax(-1)
        if self.straight_through:
            hard = torch.nn.functional.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
            y = hard + y - y.detach()
        mask_state = torch.nn.functional.one_hot(masked, process.num_states).to(x.dtype)
        y = unmask * torch.nn.functional.pad(y, (0, 1)) + (1 - unmask) * mask_state
        # Positions whose state is (mostly) unmasked are copied, the others replaced by y. The
        # copy flag is not differentiated: a differentiable mask mass m enters the next mask
        # mass as (1 - m) m + m y_m, whose derivative 1 + y_m compounds to 2^n over n steps.
        copy = (x.argmax(-1, keepdim=True) != process.mask_id).to(x.dtype)
        return copy * x + (1 - copy) * y, state


def relaxed_sample(
    model: Any,
    x: Tensor,
    grid: Tensor,
    *,
    temperature: float = 1.0,
    straight_through: bool = True,
    grad_steps: int | None = None,
    generator: torch.Generator | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = True,
) -> Tensor:
    """Sample masked diffusion with Gumbel-softmax steps; differentiable in the model parameters.

    Args:
        model: a :class:`~diffcore.discrete.DiscreteDenoiser` of a ``MaskedProcess`` whose
            network accepts (B, L, K) soft one-hot inputs (e.g. ``TokenDenoiser``).
        x: (B, L) start states (``process.prior_sample(...)``) or (B, L, K) soft states.
        grid: (n + 1,) decreasing times, e.g. ``uniform_t(process, n)``.
        temperature: Gumbel-softmax temperature.
        straight_through: hard forward, soft backward.
        grad_steps: keep gradients through the last ``grad_steps`` steps only (truncated
            backpropagation); None keeps them all; 0 gives a sample with no graph.
        generator: source of the Gumbel noise.
        callback: passed to :func:`diffcore.samplers.sample` (step indices restart at 0 in the
            differentiable segment).
        progress: show progress bars.

    Returns:
        (B, L, K) soft one-hot samples (K = V + 1; the mask column is 0 when the grid ends at
        t = 0). Use ``out[..., :V]`` as the differentiable sequence for a reward.
    """
    rule = GumbelAncestral(temperature=temperature, straight_through=straight_through)
    grid = torch.as_tensor(grid)
    n = grid.shape[0] - 1
    k = n if grad_steps is None else int(grad_steps)
    if not 0 <= k <= n:
        raise ValueError(f"`grad_steps` must lie in [0, {n}] (the number of steps), got {k}.")
    kwargs: dict[str, Any] = dict(generator=generator, callback=callback, progress=progress)
    if k < n:
        with torch.no_grad():
            x = sample(model, x, grid[: n - k + 1], rule, **kwargs).x.detach()
    if k == 0:
        return x
    return sample(model, x, grid[n - k :], rule, **kwargs).x

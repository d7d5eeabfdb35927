"""The step-rule protocol and the per-leaf coefficient helpers shared by all rules.

A step rule is a frozen dataclass of settings. ``init(x)`` returns its state (history for
multistep rules), and ``step(model, x, t0, t1, state, generator=...)`` returns ``(x1, state)``;
it never writes to ``self``. ``model`` is a :class:`diffcore.predictions.Denoiser` (anything that
maps ``(x, t)`` to a :class:`~diffcore.predictions.Prediction`, guidance wrappers included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..tree import Tree, expand_like, tree_map


@dataclass(frozen=True)
class StepRule:
    """Base class of step rules.

    Base class of step rules. ``order`` is the rule's global convergence order (ODE rules) or
    weak order (SDE rules); ``stochastic`` says whether it draws noise.
    """

    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = False

    def init(self, x: Tree) -> Any:
        """Initial solver state for the start state ``x``."""
        return None

    def step(
        self,
        model: Any,
        x: Tree,
        t0: Tensor,
        t1: Tensor,
        state: Any,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[Tree, Any]:
        """Advance ``x`` from time ``t0`` to ``t1`` (< t0). Returns ``(x1, state)``."""
        raise NotImplementedError

    def __str__(self) -> str:
        return type(self).__name__


def coef(c: Tensor, x: Tensor) -> Tensor:
    """A () or (B,) coefficient (float64) as a broadcastable tensor of ``x``'s dtype."""
    return expand_like(c, x)


def schedule(process, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(alpha, sigma, lambda) of a Gaussian leaf process at time t, in t's dtype."""
    return process.alpha(t), process.sigma(t), process.lambda_(t)


def noise_like(x: Tree, process: Any, generator: torch.Generator | None) -> Tree:
    """Constrained standard noise for every leaf of ``x``."""
    return tree_map(lambda xi, p: p.noise_like(xi, generator=generator), x, process)


def safe_div(a: Tensor, b: Tensor) -> Tensor:
    """A / b with 0 where b == 0 (the limit used by final steps to sigma = 0)."""
    return torch.where(b == 0, torch.zeros_like(a), a / torch.where(b == 0, torch.ones_like(b), b))


def host_scalars(*values: Tensor) -> tuple[Any, ...]:
    """The values as Python floats when all are 0-d CPU tensors outside autograd, else as given.

    Step coefficients are a dozen scalar operations per step; on the host, float arithmetic
    costs nanoseconds where each 0-d tensor operation costs microseconds. Tensors on an
    accelerator, per-sample (B,) times and times that carry gradients (fitted grids) keep
    the tensor path. Use with :func:`expm1`.
    """
    if all(
        isinstance(v, Tensor) and v.ndim == 0 and v.device.type == "cpu" and not v.requires_grad
        for v in values
    ):
        return tuple(v.item() for v in values)
    return values


def expm1(v: Any) -> Any:
    """``expm1`` of a float or a tensor."""
    return math.expm1(v) if isinstance(v, float) else torch.expm1(v)

"""FlowChef: gradient-free steering of rectified flows (Patel et al. 2024, arXiv:2412.00100).

At each Euler step the velocity ``v = model(x_t, t)`` gives the data estimate
``x0_hat = x_t - t v`` (rectified flow; in general the prediction's ``x0``). The cost is
descended in ``x0_hat`` itself, never through the network ("gradient skipping": for nearly
straight flows the Jacobian d x0_hat / d x_t is close to the identity), and the state is moved by
the same displacement before the Euler step with the *same* velocity:

    x_t <- x_t - s grad L(x0_hat);    x_{t1} = x_t + (t1 - t0) v

so a step costs one network evaluation and a cost gradient, as in the authors' code
(FlowChef/FlowChef: inverseproblems/.../generate_inverseproblems_flowchef.py), which also leaves
the last step (into t = 0) unsteered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..samplers.base import StepRule, coef


@dataclass(frozen=True)
class FlowChef(StepRule):
    """Euler steps on the probability-flow ODE, steered toward low ``cost(x0_hat)``.

    Use it as a step rule: ``sample(model, x, uniform_t(rf, 20), FlowChef(cost, 0.5))``.

    Attributes:
        cost: ``cost(x0) -> (B,)`` per-sample cost of a (B, *S) data estimate; differentiable
            in ``x0`` (the network is never differentiated).
        step_size: gradient step s on x0_hat per inner iteration.
        n_inner: gradient steps per sampling step (each on the updated x0_hat).
        steer_final: also steer the step that ends at the data end (off, as the authors' code).
    """

    cost: Callable[[Tensor], Tensor]
    step_size: float
    n_inner: int = 1
    steer_final: bool = False
    order: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if self.step_size < 0:
            raise ValueError(f"`step_size` must be >= 0, got {self.step_size}")
        if self.n_inner < 1:
            raise ValueError(f"`n_inner` must be >= 1, got {self.n_inner}")

    def steer(self, x0: Tensor) -> Tensor:
        """``n_inner`` gradient steps on ``cost`` from ``x0`` (B, *S); returns the new x0."""
        z = x0.detach()
        for _ in range(self.n_inner):
            with torch.enable_grad():
                zg = z.requires_grad_(True)
                c = self.cost(zg)
                if c.shape != (x0.shape[0],):
                    raise ValueError(
                        f"`cost` must return one value per sample, shape ({x0.shape[0]},), got "
                        f"{tuple(c.shape)}"
                    )
                (g,) = torch.autograd.grad(c.sum(), zg)
            z = z.detach() - self.step_size * g
        return z

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        if not isinstance(x, Tensor):
            raise TypeError("FlowChef steers single-tensor states")
        pred = model(x, t0)
        v = pred.velocity
        final = bool((t1 <= model.process.t_min).all())
        if self.steer_final or not final:
            x0 = pred.x0
            x = x + (self.steer(x0) - x0)
        return x + coef(t1 - t0, x) * v, state

    def __str__(self) -> str:
        return f"FlowChef(s={self.step_size:g}, n_inner={self.n_inner})"

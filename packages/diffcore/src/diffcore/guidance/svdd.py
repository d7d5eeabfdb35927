r"""SVDD: derivative-free guidance by soft value-based decoding.

Li et al. 2024 (arXiv:2408.08252), Algorithm 1. The reward-tilted policy
``p*(x_{t-1} | x_t) ∝ p_pre(x_{t-1} | x_t) exp(v(x_{t-1}) / alpha)`` is approximated by
importance sampling: draw M candidates from the pretrained stochastic step, weight each by
``exp(v / alpha)`` and resample one (alpha = 0: take the best). The soft value v is

- SVDD-PM (:class:`PosteriorMeanValue`): the reward of the denoised estimate,
  ``v(x_t) = r(x0_hat(x_t))``, no training;
- SVDD-MC (:class:`RegressedValue`): a regressor of ``r(x_0)`` on ``(x_t, t)`` fitted on
  rollouts of the pretrained sampler (:func:`rollout_values`, :func:`fit_value`).

Nothing here depends on the state being continuous: the candidate generator is any stochastic
:class:`~diffcore.samplers.StepRule` (DDPM ancestral, Euler-Maruyama, DDIM(eta > 0), a discrete
sampler's step), the state may be a tree, and the value function is a plain callable
``value(model, x, t) -> (B,)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..predictions import Prediction
from ..processes.gaussian import GaussianProcess
from ..samplers.base import StepRule
from ..samplers.loop import sample
from ..tree import Tree, batch_size, broadcast_leaves, first_leaf, tree_map
from ._wrapper import WrapsModel

ValueFn = Callable[[Any, Tree, Tensor], Tensor]


def _repeat(tree: Tree, m: int) -> Tree:
    return tree_map(lambda v: v.repeat_interleave(m, dim=0) if isinstance(v, Tensor) else v, tree)


def _repeat_t(t: Tensor, m: int) -> Tensor:
    return t.repeat_interleave(m) if t.ndim == 1 else t


def _at_data_end(process: Any, x: Tree, t: Tensor) -> Tensor:
    """(B,) or () bool: the state is clean data at t (t at t_min, or sigma(t) = 0)."""
    out = torch.zeros_like(t, dtype=torch.bool)
    for p in broadcast_leaves(x, process):
        end = t <= p.t_min
        if isinstance(p, GaussianProcess):
            end = end | (p.sigma(t) == 0)
        out = out | end
    return out


class _Shared(WrapsModel):
    """A model seen through M identical copies of each sample.

    A call on the repeated start state itself evaluates the network once per sample and repeats
    the prediction; any other call passes through.
    """

    def __init__(self, model: Any, x: Tree, xr: Tree, m: int) -> None:
        self.model, self.x, self.xr, self.m = model, x, xr, m

    def __call__(self, x: Tree, t: Tensor) -> Prediction:
        t = torch.as_tensor(t)
        if x is not self.xr:
            return self.model(x, t)
        t_one = t[:: self.m] if t.ndim == 1 else t
        pred = self.model(self.x, t_one)
        return Prediction(
            raw=_repeat(pred.raw, self.m),
            x=self.xr,
            t=_repeat_t(torch.as_tensor(pred.t), self.m),
            process=pred.process,
            kind=pred.kind,
        )


@dataclass(frozen=True)
class SVDD(StepRule):
    """Value-guided decoding around a stochastic step rule (SVDD, Li et al. 2024, Alg. 1).

    Per step and sample: ``n_candidates`` draws ``x_{t1}^(m)`` from ``rule``, values
    ``v_m = value(model, x_{t1}^(m), t1)``, and one of them kept, drawn with probabilities
    ``softmax(v / alpha)`` (``alpha = 0``: the argmax). The network is evaluated once at
    ``x_{t0}`` for all candidates when ``rule`` evaluates it there first; the value function
    adds its own evaluations (M per sample for SVDD-PM).

    Attributes:
        rule: the pretrained sampler's stochastic step; its state must be None (one-step rules).
        value: ``value(model, x, t) -> (B,)``, e.g. :class:`PosteriorMeanValue` or
            :class:`RegressedValue`.
        n_candidates: M, candidates per step.
        alpha: temperature (>= 0).
    """

    rule: StepRule
    value: ValueFn
    n_candidates: int = 8
    alpha: float = 0.0
    stochastic: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.n_candidates < 1:
            raise ValueError(f"`n_candidates` must be >= 1, got {self.n_candidates}")
        if self.alpha < 0:
            raise ValueError(f"`alpha` must be >= 0, got {self.alpha}")
        if not getattr(self.rule, "stochastic", False):
            raise ValueError(
                f"SVDD draws candidates from a stochastic step rule; {self.rule} is "
                "deterministic (use e.g. DDPMAncestral() or DDIM(eta=1.0))"
            )

    def init(self, x: Tree) -> Any:  # noqa: D102
        state = self.rule.init(x)
        if state is not None:
            raise TypeError(
                f"SVDD needs a one-step rule whose state is None; {self.rule} keeps a "
                f"{type(state).__name__} (multistep history cannot be shared by candidates)"
            )
        return None

    def select(self, values: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Index (B,) of the kept candidate from (B, M) values."""
        if not bool(torch.isfinite(values).all()):
            raise FloatingPointError("the value function returned NaN or inf")
        if self.alpha == 0:
            return values.argmax(dim=1)
        probs = torch.softmax(values.to(torch.float64) / self.alpha, dim=1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        b, m = batch_size(x), self.n_candidates
        xr = _repeat(x, m)
        t0r, t1r = _repeat_t(t0, m), _repeat_t(t1, m)
        cand, _ = self.rule.step(_Shared(model, x, xr, m), xr, t0r, t1r, None, generator=generator)
        values = self.value(model, cand, t1r)
        if values.shape != (b * m,):
            raise ValueError(
                f"`value` must return one value per candidate, shape ({b * m},), got "
                f"{tuple(values.shape)}"
            )
        idx = self.select(values.reshape(b, m), generator=generator)
        rows = torch.arange(b, device=idx.device) * m + idx
        return tree_map(lambda c: c[rows], cand), state

    def __str__(self) -> str:
        return f"SVDD({self.rule}, M={self.n_candidates}, alpha={self.alpha:g})"


@dataclass(frozen=True)
class PosteriorMeanValue:
    """SVDD-PM: ``v(x_t) = reward(x0_hat(x_t))``; at the data end, ``reward(x)``.

    Attributes:
        reward: ``reward(x0) -> (B,)`` for a clean (B, ...) state; need not be differentiable.
    """

    reward: Callable[[Tree], Tensor]

    def __call__(self, model: Any, x: Tree, t: Tensor) -> Tensor:
        """Values (B,) of states ``x`` at times ``t`` (() or (B,))."""
        with torch.no_grad():
            end = _at_data_end(model.process, x, t)
            if bool(end.all()):
                return self.reward(x)
            v = self.reward(model(x, t).x0)
            if bool(end.any()):
                v = torch.where(end, self.reward(x), v)
        return v


@dataclass(frozen=True)
class RegressedValue:
    """SVDD-MC: a learned ``v(x_t, t) ≈ E[reward(x_0) | x_t]``.

    Attributes:
        net: ``net(x, t) -> (B,)`` (e.g. fitted by :func:`fit_value`), t of shape (B,).
        reward: optional exact reward used at the data end instead of the regressor.
    """

    net: Callable[[Tree, Tensor], Tensor]
    reward: Callable[[Tree], Tensor] | None = None

    def __call__(self, model: Any, x: Tree, t: Tensor) -> Tensor:
        """Values (B,) of states ``x`` at times ``t`` (() or (B,))."""
        with torch.no_grad():
            leaf = first_leaf(x)
            tb = torch.as_tensor(t, device=leaf.device).expand(batch_size(x))
            v = self.net(x, tb.to(leaf.dtype if leaf.is_floating_point() else tb.dtype))
            if self.reward is not None:
                end = _at_data_end(model.process, x, t)
                if bool(end.any()):
                    v = torch.where(end, self.reward(x), v)
        return v.reshape(-1)


@dataclass
class ValueData:
    """Regression data for SVDD-MC: states ``x`` (N, ...), times ``t`` (N,), targets (N,)."""

    x: Tree
    t: Tensor
    reward: Tensor


def rollout_values(
    model: Any,
    x: Tree,
    grid: Tensor,
    rule: StepRule,
    reward: Callable[[Tree], Tensor],
    *,
    generator: torch.Generator | None = None,
) -> ValueData:
    """Run the pretrained sampler and pair every intermediate state with its final reward.

    Args:
        model: the pretrained Denoiser.
        x: (B, ...) start states (from the prior).
        grid: (n + 1,) decreasing times.
        rule: the pretrained step rule.
        reward: ``reward(x0) -> (B,)``.
        generator: randomness of the sampler.

    Returns:
        :class:`ValueData` with ``(n + 1) B`` rows: ``(x_{t_i}, t_i, reward(x_0))``.
    """
    out = sample(model, x, grid, rule, generator=generator, progress=False, return_trajectory=True)
    r = reward(out.x).detach()
    n, b = len(out.trajectory), batch_size(x)
    xs = tree_map(lambda *leaves: torch.cat(leaves, 0), *out.trajectory)
    times = out.times if out.times.ndim == 2 else out.times[:, None].expand(n, b)
    return ValueData(x=xs, t=times.reshape(-1).to(r.dtype), reward=r.repeat(n))


def fit_value(
    net: nn.Module,
    data: ValueData,
    *,
    steps: int = 1000,
    lr: float = 1e-3,
    batch: int = 256,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Fit ``net(x, t) -> (B,)`` to the rewards by least squares (SVDD-MC's regression).

    Adam on random minibatches; ``net`` is trained in place.

    Returns:
        The minibatch losses, one per step.
    """
    n = data.t.shape[0]
    if n == 0:
        raise ValueError("`data` is empty")
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        idx = torch.randint(n, (min(batch, n),), generator=generator).to(data.t.device)
        xb = tree_map(lambda v, i=idx: v[i], data.x)
        pred = net(xb, data.t[idx]).reshape(-1)
        loss = (pred - data.reward[idx].to(pred.dtype)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses

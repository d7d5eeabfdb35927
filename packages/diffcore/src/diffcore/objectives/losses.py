"""Training objectives: denoising score matching and flow matching over tensor or tree states.

Both objectives are frozen dataclasses; ``loss(net, x0, generator=...)`` returns the scalar loss
for a batch, and ``per_sample(...)`` the (B,) values. ``net(x_t, t, **kwargs)`` is the network
(its output a tree like ``x0``); ``mask`` (a tree of (B, *S) or broadcastable 0/1 tensors) keeps
padded entries out of the mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..predictions import from_x0_eps
from ..tree import Tree, batch_size, broadcast_leaves, first_leaf, leaves, tree_map
from .time_samplers import UniformTime

WEIGHTINGS = ("uniform", "snr", "min-snr", "edm")


def _masked_mean(sq: Tensor, mask: Tensor | None) -> Tensor:
    """Per-sample mean of ``sq`` (B, *S) over valid entries -> (B,)."""
    if mask is None:
        return sq.flatten(1).mean(1)
    m = torch.broadcast_to(mask.to(sq.dtype), sq.shape)
    return (sq * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1.0)


def _sum_leaves(per_leaf: Tree, weights: Any) -> Tensor:
    vals = leaves(per_leaf)
    ws = [1.0] * len(vals) if weights is None else leaves(weights)
    out = ws[0] * vals[0]
    for w, v in zip(ws[1:], vals[1:], strict=True):
        out = out + w * v
    return out


@dataclass(frozen=True)
class DenoisingScoreMatching:
    """Denoising score matching with a weighting over noise levels.

    Denoising score matching in any prediction space (Vincent 2011; Ho et al. 2020; Song et
    al. 2021), with a weighting over noise levels.

    The loss at time t is ``w(t) ||net(x_t, t) - target||^2`` with ``target`` the ``prediction``
    of the true ``(x0, eps)``. Weightings (as functions of SNR = alpha^2 / sigma^2):

    - ``"uniform"``: w = 1 in the prediction's own space (DDPM's "simple" loss for eps).
    - ``"snr"``: the eps-space loss times SNR, i.e. the x0-space MSE, converted to the
      prediction's space.
    - ``"min-snr"``: Min-SNR-gamma (Hang et al. 2023, arXiv:2303.09556, eq. 8): x0-space weight
      min(SNR, gamma), converted (eps: min(SNR, gamma)/SNR, v: min(SNR, gamma)/(SNR + 1)).
    - ``"edm"``: x0-space weight (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (Karras et al.
      2022, eq. 8 and Table 1), for alpha = 1 processes.

    Attributes:
        process: the process, or a process tree for tuple/dict states.
        prediction: what ``net`` outputs ("eps", "x0", "v", "score", "velocity"), or a tree.
        weighting: one of ``WEIGHTINGS``.
        time_sampler: distribution of training times.
        gamma: Min-SNR's gamma (5 in the paper).
        sigma_data: EDM's data std (0.5).
        leaf_weights: optional tree of per-leaf loss weights (GDSS weighs X and A).
    """

    process: Any
    prediction: Any = "eps"
    weighting: str = "uniform"
    time_sampler: Any = field(default_factory=UniformTime)
    gamma: float = 5.0
    sigma_data: float = 0.5
    leaf_weights: Any = None

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(
                f"unknown weighting {self.weighting!r}; expected one of {', '.join(WEIGHTINGS)}"
            )

    def _weight(self, p, t: Tensor, kind: str) -> Tensor:
        if self.weighting == "uniform":
            return torch.ones_like(t)
        a, s = p.alpha(t), p.sigma(t)
        snr = (a / s) ** 2
        if self.weighting == "snr":
            x0_weight = snr
        elif self.weighting == "min-snr":
            x0_weight = snr.clamp(max=self.gamma)
        else:
            x0_weight = (s**2 + self.sigma_data**2) / (s * self.sigma_data) ** 2
        # An x0-space weight w0 becomes w0 |d x0 / d y|^2 in the prediction y's own space.
        if kind == "x0":
            return x0_weight
        if kind == "eps":
            return x0_weight / snr
        if kind == "v":
            return x0_weight * s**2 / (a**2 + s**2) ** 2
        if kind == "score":
            return x0_weight * (s**2 / a) ** 2
        return x0_weight * (s / (p.d_sigma(t) * a - p.d_alpha(t) * s)) ** 2

    def per_sample(
        self,
        net,
        x0: Tree,
        *,
        generator: torch.Generator | None = None,
        t: Tensor | None = None,
        noise: Tree | None = None,
        mask: Tree = None,
        **net_kwargs: Any,
    ) -> Tensor:
        """Weighted per-sample losses, shape (B,).

        (B,) weighted losses. ``t`` and ``noise`` may be given (else drawn from
        ``generator``).
        """
        leaf = first_leaf(x0)
        b = batch_size(x0)
        if t is None:
            t = self.time_sampler.sample(
                b,
                broadcast_leaves(x0, self.process)[0],
                generator=generator,
                device=leaf.device,
                dtype=torch.float64,
            )
        t = torch.as_tensor(t, device=leaf.device, dtype=torch.float64)
        if t.ndim == 0:
            t = t.expand(b)
        if noise is None:
            noise = tree_map(lambda x, p: p.noise_like(x, generator=generator), x0, self.process)
        x_t = tree_map(lambda x, e, p: p.marginal(x, t, e), x0, noise, self.process)
        out = net(x_t, t.to(leaf.dtype), **net_kwargs)

        def leaf_loss(y, x, e, p, kind, m):
            target = from_x0_eps(x, e, t, p, kind)
            w = self._weight(p, t, kind).to(y.dtype)
            return w * _masked_mean((p.project(y) - target) ** 2, m)

        per_leaf = tree_map(leaf_loss, out, x0, noise, self.process, self.prediction, mask)
        return _sum_leaves(per_leaf, self.leaf_weights)

    def loss(self, net, x0: Tree, *, generator=None, **kwargs: Any) -> Tensor:
        """Batch-mean loss (a scalar)."""
        return self.per_sample(net, x0, generator=generator, **kwargs).mean()

    __call__ = loss


@dataclass(frozen=True)
class FlowMatching:
    """Conditional flow matching on a process's path velocity.

    Conditional flow matching (Lipman et al. 2023, arXiv:2210.02747; Liu et al. 2022):
    regress ``net(x_t, t)`` on the path velocity.

    For a Gaussian process (rectified flow, VP, ...) the target is ``alpha' x0 + sigma' eps``;
    for a :class:`~diffcore.processes.StochasticInterpolant` it is ``a' x0 + b' x1 + gamma' z``
    with ``x1`` from the source (or given as ``noise``: reflow pairs, paired data).

    Attributes:
        process: a process or process tree.
        time_sampler: uniform, logit-normal (SD3) or U-shaped (improved RF) times.
        leaf_weights: optional per-leaf weights.
    """

    process: Any
    time_sampler: Any = field(default_factory=UniformTime)
    leaf_weights: Any = None

    def per_sample(
        self,
        net,
        x0: Tree,
        *,
        generator: torch.Generator | None = None,
        t: Tensor | None = None,
        noise: Tree | None = None,
        mask: Tree = None,
        **net_kwargs: Any,
    ) -> Tensor:
        """(B,) losses; ``noise`` fixes the source end x1 (reflow / paired data)."""
        from ..processes.interpolants import StochasticInterpolant

        leaf = first_leaf(x0)
        b = batch_size(x0)
        ref = broadcast_leaves(x0, self.process)
        if t is None:
            t = self.time_sampler.sample(
                b, ref[0], generator=generator, device=leaf.device, dtype=torch.float64
            )
        t = torch.as_tensor(t, device=leaf.device, dtype=torch.float64)
        if t.ndim == 0:
            t = t.expand(b)
        if noise is None:
            noise = tree_map(
                lambda x, p: (
                    p.source_sample(x, generator=generator)
                    if isinstance(p, StochasticInterpolant)
                    else p.noise_like(x, generator=generator)
                ),
                x0,
                self.process,
            )
        latent = tree_map(
            lambda x, p: (
                p.noise_like(x, generator=generator)
                if isinstance(p, StochasticInterpolant)
                else None
            ),
            x0,
            self.process,
        )

        def interpolate(x, x1, z, p):
            if isinstance(p, StochasticInterpolant):
                return p.interpolate(x, x1, t, z)
            return p.marginal(x, t, x1)

        def velocity(x, x1, z, p):
            if isinstance(p, StochasticInterpolant):
                return p.velocity_target(x, x1, t, z)
            return from_x0_eps(x, x1, t, p, "velocity")

        x_t = tree_map(interpolate, x0, noise, latent, self.process)
        target = tree_map(velocity, x0, noise, latent, self.process)
        out = net(x_t, t.to(leaf.dtype), **net_kwargs)
        per_leaf = tree_map(
            lambda y, tg, p, m: _masked_mean((p.project(y) - tg) ** 2, m),
            out,
            target,
            self.process,
            mask,
        )
        return _sum_leaves(per_leaf, self.leaf_weights)

    def loss(self, net, x0: Tree, *, generator=None, **kwargs: Any) -> Tensor:
        """Batch-mean loss (a scalar)."""
        return self.per_sample(net, x0, generator=generator, **kwargs).mean()

    __call__ = loss

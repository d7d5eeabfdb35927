"""Classifier-free guidance and composable diffusion: wrappers around predictions.

A guidance wrapper has the face of a :class:`~diffcore.predictions.Denoiser` (``process``,
``nfe``, ``__call__(x, t) -> Prediction``), so every step rule samples with it unchanged. The
combination is made on eps (equivalently on the score, ``-eps / sigma``), leaf by leaf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..predictions import Prediction
from ..tree import Tree, expand_like, tree_map


def _combine(
    x: Tree, t: Tensor, process: Any, base: Prediction, terms: Sequence[tuple[Prediction, Tensor]]
):
    """Eps = eps_base + sum_k w_k (eps_k - eps_base), with () or (B,) weights w_k."""

    def leaf(e_base, *rest):
        out = e_base
        for e_k, w in zip(rest, [w for _, w in terms], strict=True):
            out = out + expand_like(w, e_base) * (e_k - e_base)
        return out

    eps = tree_map(leaf, base.eps, *[p.eps for p, _ in terms])
    return Prediction(raw=eps, x=x, t=t, process=process, kind=tree_map(lambda _: "eps", eps))


@dataclass
class ClassifierFreeGuidance:
    """Classifier-free guidance (Ho & Salimans 2022, arXiv:2207.12598, eq. 6).

    ``eps = eps_u + w (eps_c - eps_u)``: w = 1 is the conditional model, w = 0 the unconditional
    one, w > 1 sharpens toward the condition. Two network evaluations per call.

    Attributes:
        conditional: Denoiser with the condition (e.g. ``Denoiser(net, "eps", p, cond=c)``).
        unconditional: Denoiser without it (null label / empty prompt).
        scale: guidance weight w.
        interval: optional ``(t_lo, t_hi)``: guide only there, plain conditional elsewhere
            (guidance interval, Kynkaanniemi et al. 2024, arXiv:2404.07724).
        rescale: phi of Lin et al. 2024 (arXiv:2305.08891, eq. 15-16): blend the guided eps
            with its rescaling to the conditional eps's per-sample std (0 disables).
    """

    conditional: Any
    unconditional: Any
    scale: float
    interval: tuple[float, float] | None = None
    rescale: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rescale <= 1.0:
            raise ValueError(f"`rescale` must lie in [0, 1], got {self.rescale}")
        if self.interval is not None and not self.interval[0] < self.interval[1]:
            raise ValueError(
                f"`interval` must be (t_lo, t_hi) with t_lo < t_hi, got {self.interval}"
            )

    @property
    def process(self) -> Any:
        """The conditional model's process (tree)."""
        return self.conditional.process

    @property
    def nfe(self) -> int:
        """Network evaluations of both models."""
        return self.conditional.nfe + self.unconditional.nfe

    def __call__(self, x: Tree, t: Tensor | float) -> Prediction:
        """Guided prediction at ``(x, t)``."""
        pc, pu = self.conditional(x, t), self.unconditional(x, t)
        tt: Tensor = pc.t
        w = torch.as_tensor(self.scale, dtype=torch.float64, device=tt.device)
        if self.interval is not None:
            inside = (tt >= self.interval[0]) & (tt <= self.interval[1])
            w = torch.where(inside, w, torch.ones_like(w))
        guided = _combine(x, tt, self.process, pu, [(pc, w)])
        if self.rescale == 0.0:
            return guided

        def rescale(e_g: Tensor, e_c: Tensor) -> Tensor:
            dims = tuple(range(1, e_g.ndim))
            ratio = e_c.std(dim=dims, keepdim=True) / e_g.std(dim=dims, keepdim=True).clamp_min(
                _STD_GUARD
            )
            return self.rescale * e_g * ratio + (1 - self.rescale) * e_g

        eps = tree_map(rescale, guided.raw, pc.eps)
        return Prediction(raw=eps, x=x, t=tt, process=self.process, kind=guided.kind)


_STD_GUARD = 1e-12  # avoids 0/0 when a guided eps is constant


@dataclass
class Composition:
    """Composable diffusion: AND and NOT of concepts (Liu et al. 2022, arXiv:2206.01714).

    ``eps = eps_u + sum_k w_k (eps_k - eps_u)`` (their eq. 12).

    Positive weights AND a concept in, negative weights NOT it out. With weights 1 the sampled
    density is ``p_u(x) prod_k p_k(x) / p_u(x)``, exactly so for Gaussians of one covariance.

    Attributes:
        unconditional: the unconditional Denoiser.
        concepts: ``[(denoiser_k, weight_k), ...]``.
    """

    unconditional: Any
    concepts: Sequence[tuple[Any, float]]

    def __post_init__(self) -> None:
        if not self.concepts:
            raise ValueError("`concepts` must hold at least one (denoiser, weight) pair")

    @property
    def process(self) -> Any:
        """The unconditional model's process (tree)."""
        return self.unconditional.process

    @property
    def nfe(self) -> int:
        """Network evaluations of every model."""
        return self.unconditional.nfe + sum(d.nfe for d, _ in self.concepts)

    def __call__(self, x: Tree, t: Tensor | float) -> Prediction:
        """Composed prediction at ``(x, t)``."""
        pu = self.unconditional(x, t)
        terms = [
            (d(x, t), torch.as_tensor(w, dtype=torch.float64, device=pu.t.device))
            for d, w in self.concepts
        ]
        return _combine(x, pu.t, self.process, pu, terms)

"""Classifier guidance (Dhariwal & Nichol 2021, arXiv:2105.05233, sec. 4, Algorithms 1-2).

A classifier ``p(c | x_t, t)`` trained on noisy data tilts the prior toward class c:
``score(x_t | c) = score(x_t) + s grad_x log p(c | x_t, t)``, i.e. the guided noise prediction is
``eps - s sigma_t grad_x log p(c | x_t, t)`` (their Algorithm 2 with ``sigma_t = sqrt(1 - a_bar)``).
With the exact (Bayes) classifier and s = 1 this is exactly the class-conditional score, so any
sampler then draws from ``p(x | c)``; s > 1 samples ``p(x) p(c | x)^s`` approximately.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..predictions import Prediction
from ._wrapper import WrapsModel


@dataclass
class ClassifierGuidance(WrapsModel):
    """Guide ``model`` with the gradient of a noisy classifier's log-probability.

    Has the face of a Denoiser (``process``, ``nfe``, ``__call__``), so it composes with the
    other wrappers (e.g. around a :class:`~diffcore.guidance.ClassifierFreeGuidance`) and
    samples with every step rule.

    Attributes:
        model: the Denoiser (or guidance wrapper) to guide; single-tensor states.
        classifier: ``classifier(x, t) -> logits`` of shape (B, C) when ``label`` is given, or
            ``log p(c | x_t, t)`` of shape (B,) when ``label`` is None; ``x`` (B, *S), ``t``
            (B,) diffcore times. It must be differentiable in ``x``.
        scale: guidance scale s (1: exact conditional with an exact classifier).
        label: target class: an int, or (B,) per-sample labels; None when ``classifier``
            already returns the log-probability of the target.
    """

    model: Any
    classifier: Callable[[Tensor, Tensor], Tensor]
    scale: float = 1.0
    label: int | Tensor | None = None

    def log_prob(self, x: Tensor, t: Tensor) -> Tensor:
        """``log p(c | x_t, t)``, (B,), for (B, *S) ``x`` and () or (B,) ``t``."""
        t = torch.as_tensor(t, device=x.device)
        t_batch = t.expand(x.shape[0]) if t.ndim == 0 else t
        out = self.classifier(x, t_batch)
        if self.label is None:
            if out.shape != (x.shape[0],):
                raise ValueError(
                    f"with `label=None` the classifier must return log p(c | x_t) of shape "
                    f"({x.shape[0]},), got {tuple(out.shape)}; pass `label` for logits"
                )
            return out
        if out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise ValueError(
                f"the classifier must return logits of shape (B, C) = ({x.shape[0]}, C), got "
                f"{tuple(out.shape)}"
            )
        label = torch.as_tensor(self.label, device=x.device).long().expand(x.shape[0])
        return torch.log_softmax(out, dim=1).gather(1, label[:, None])[:, 0]

    def __call__(self, x: Tensor, t: Tensor | float) -> Prediction:
        """Classifier-guided prediction (kind ``"score"``) at ``(x, t)``."""
        pred = self.model(x, t)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.log_prob(xg, pred.t).sum(), xg)
        score = pred.score + self.scale * grad.to(x.dtype)
        return Prediction(raw=score, x=x, t=pred.t, process=self.process, kind="score")

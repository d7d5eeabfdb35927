"""Observation self-guidance of TSDiff (Kollovieh et al. 2023, arXiv:2307.11494).

An unconditional model imputes or forecasts a series from the observed entries ``y`` of a
masked series: the guided noise prediction is ``eps - s sigma_t grad_x log p(y | x_t)``, with
``p(y | x_t)`` built from the model's own denoised estimate ``x0_hat(x_t)`` on the observed
positions:

- ``"mse"``: ``log p = -||mask * (y - x0_hat)||^2`` (a Gaussian);
- ``"quantile"``: ``log p = -sum mask * L_q(y, x0_hat)`` with the pinball loss
  ``L_q(y, z) = max(q (y - z), (q - 1) (y - z))``, for quantile level q (one per
  sample if wanted, so one batch carries several quantiles of the predictive distribution).

No conditional training is needed; the observed entries of the output approach ``y`` and the
missing ones follow the model's learned dependence on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..predictions import Prediction
from ..tree import expand_like
from ._wrapper import WrapsModel

LOSSES = ("mse", "quantile")


@dataclass
class ObservationGuidance(WrapsModel):
    """Self-guide a (single-tensor) model toward observed entries ``y`` where ``mask`` is 1.

    Attributes:
        model: the unconditional Denoiser.
        y: (B, *S) or (1, *S) observed values (anything where ``mask`` is 0 is ignored).
        mask: 0/1 tensor broadcastable to ``y``: 1 where observed.
        scale: guidance scale s.
        loss: ``"mse"`` or ``"quantile"``.
        quantile: level q in (0, 1) of the quantile loss: a float or (B,) per sample.
    """

    model: Any
    y: Tensor
    mask: Tensor
    scale: float = 1.0
    loss: str = "mse"
    quantile: float | Tensor = 0.5

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {', '.join(LOSSES)}")
        q = torch.as_tensor(self.quantile)
        if not bool(((q > 0) & (q < 1)).all()):
            raise ValueError(f"`quantile` must lie in (0, 1), got {self.quantile}")
        observed = torch.where(self.mask.to(torch.bool), self.y, torch.zeros_like(self.y))
        if not bool(torch.isfinite(observed).all()):
            raise ValueError("`y` has NaN or inf at observed positions")

    def log_likelihood(self, x0: Tensor) -> Tensor:
        """``log p(y | x0_hat)`` per sample (B,) up to a constant, for (B, *S) ``x0``."""
        m = self.mask.to(x0.dtype)
        y = torch.where(m > 0, self.y.to(x0.dtype), torch.zeros_like(x0))  # NaN-safe
        r = (y - x0) * m
        if self.loss == "mse":
            return -r.pow(2).flatten(1).sum(1)
        q = expand_like(torch.as_tensor(self.quantile, dtype=x0.dtype), x0)
        return -(torch.maximum(q * r, (q - 1) * r) * m).flatten(1).sum(1)

    def __call__(self, x: Tensor, t: Tensor | float) -> Prediction:
        """Self-guided prediction (kind ``"score"``) at ``(x, t)``."""
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            pred = self.model(xg, t)
            (grad,) = torch.autograd.grad(self.log_likelihood(pred.x0).sum(), xg)
        score = pred.score.detach() + self.scale * grad
        return Prediction(raw=score, x=x, t=pred.t, process=self.process, kind="score")

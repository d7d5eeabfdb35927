"""Posterior sampling for inverse problems y = A x + n.

The likelihood's score is added to the prior's, as a guidance wrapper (any step rule samples
with it).

``score(x_t | y) = score(x_t) + grad_x log p(y | x_t)``, with ``p(y | x_t)`` approximated
through the denoiser ``x0_hat(x_t)``:

- ``"dps"``: Chung et al. 2023 (arXiv:2209.14687), Algorithm 1: the gradient of
  ``-zeta ||y - A x0_hat||`` (their step normalised by the residual norm).
- ``"pigdm"``: the Gaussian approximation ``p(y | x_t) = N(y; A x0_hat, sigma_y^2 I + r_t^2 A A^T)``
  with ``r_t^2 = v sigma_t^2 / (alpha_t^2 v + sigma_t^2)`` (Song et al. 2023, PiGDM,
  arXiv:2303.04824, eq. 7-8, for data of per-dimension variance ``v``); exact when the data
  are Gaussian with covariance v I.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..operators import LinearOperator, conjugate_gradient
from ..predictions import Prediction
from ..tree import expand_like
from ._wrapper import WrapsModel

METHODS = ("dps", "pigdm")
_CG_STEPS = 50
_CG_TOL = 1e-10  # relative residual


@dataclass
class PosteriorSampling(WrapsModel):
    """Guide a (single-tensor) prior ``model`` toward measurements ``y = A x + noise``.

    Attributes:
        model: the prior Denoiser.
        operator: the forward operator A.
        y: (B, *M) measurements (one per sample) or (1, *M) shared.
        noise_std: measurement noise std sigma_y.
        method: ``"dps"`` or ``"pigdm"`` (see the module docstring).
        zeta: guidance weight (DPS's zeta'; 1 for PiGDM's exact Gaussian case).
        data_var: per-dimension data variance v assumed by PiGDM.
    """

    model: Any
    operator: LinearOperator
    y: Tensor
    noise_std: float
    method: str = "pigdm"
    zeta: float = 1.0
    data_var: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(
                f"unknown method {self.method!r}; expected one of {', '.join(METHODS)}"
            )
        if not bool(torch.isfinite(self.y).all()):
            raise ValueError("`y` contains NaN or inf")
        if self.noise_std < 0:
            raise ValueError(f"`noise_std` must be >= 0, got {self.noise_std}")

    def _pigdm_vector(self, residual: Tensor, r2: Tensor) -> Tensor:
        """Solve (sigma_y^2 I + r_t^2 A A^T) v = residual by conjugate gradients."""
        op, s2 = self.operator, self.noise_std**2
        return conjugate_gradient(
            lambda v: s2 * v + expand_like(r2, v) * op.A(op.A_adjoint(v)),
            residual,
            steps=_CG_STEPS,
            tol=_CG_TOL,
        )

    def __call__(self, x: Tensor, t: Tensor | float) -> Prediction:
        """Posterior-guided prediction (kind "score") at ``(x, t)``."""
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            pred = self.model(xg, t)
            x0 = pred.x0
            ax0 = self.operator.A(x0)
            residual = self.y.to(ax0.dtype) - ax0
            if self.method == "dps":
                objective = -self.zeta * residual.flatten(1).norm(dim=1).sum()
            else:
                tt = pred.t.to(torch.float64)
                p = self.process
                a, s = p.alpha(tt), p.sigma(tt)
                r2 = (self.data_var * s**2 / (a**2 * self.data_var + s**2)).to(x.dtype)
                v = self._pigdm_vector(residual.detach(), r2)
                objective = self.zeta * (v * ax0).sum()  # gradient: J^T A^T v
            (grad,) = torch.autograd.grad(objective, xg)
        score = pred.score.detach() + grad
        return Prediction(raw=score, x=x, t=pred.t, process=self.process, kind="score")

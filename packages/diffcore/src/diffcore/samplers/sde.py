"""Stochastic step rules for the reverse-time SDE of Gaussian processes.

The reverse SDE of ``dx = f x dt + g dW`` is ``dx = (f x - g^2 score) dt + g dW_bar``
(Anderson 1982; Song et al. 2021, arXiv:2011.13456, eq. 6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..tree import tree_map
from .base import StepRule, coef, noise_like, safe_div


@dataclass(frozen=True)
class EulerMaruyama(StepRule):
    """Euler-Maruyama on the reverse SDE (weak order 1)."""

    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        pred = model(x, t0)
        dt = t1 - t0  # negative
        z = noise_like(x, model.process, generator)

        def leaf(xi, si, zi, p):
            f, g2 = p.f(t0), p.g2(t0)
            drift = coef(f, xi) * xi - coef(g2, xi) * si
            return xi + coef(dt, xi) * drift + coef(torch.sqrt(g2 * (-dt)), xi) * zi

        return tree_map(leaf, x, pred.score, z, model.process), state


@dataclass(frozen=True)
class ReverseDiffusion(StepRule):
    """The reverse-diffusion predictor of Song et al. 2021 (arXiv:2011.13456, eq. 46-47).

    The forward step from t1 to t0 is discretised as ``x_t0 = a x_t1 + b z`` with
    ``a = alpha0 / alpha1`` and ``b^2 = sigma0^2 - a^2 sigma1^2``; the predictor is
    ``x_t1 = (2 - a) x_t0 + b^2 score + b z`` (exactly their VP and VE predictors).
    """

    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        pred = model(x, t0)
        z = noise_like(x, model.process, generator)

        def leaf(xi, si, zi, p):
            a = p.alpha(t0) / p.alpha(t1)
            b2 = (p.sigma(t0) ** 2 - a**2 * p.sigma(t1) ** 2).clamp_min(0)
            return coef(2 - a, xi) * xi + coef(b2, xi) * si + coef(b2.sqrt(), xi) * zi

        return tree_map(leaf, x, pred.score, z, model.process), state


@dataclass(frozen=True)
class Langevin(StepRule):
    """Langevin corrector at fixed time (Song et al. 2021, Algorithm 4/5).

    ``n_steps`` updates ``x <- x + eps s + sqrt(2 eps) z`` at time t0 with the step size
    ``eps = 2 (snr ||z|| / ||s||)^2`` chosen per sample and per leaf from the target
    signal-to-noise ratio. As a rule on its own it stays at t0 (``t1`` is ignored); use it
    inside :class:`PredictorCorrector`.

    Attributes:
        snr: target signal-to-noise ratio (0.16 in Song et al. for CIFAR-10; GDSS per dataset).
        n_steps: corrector steps per time.
        scale_eps: multiplies the injected noise (GDSS's ``scale_eps``; 1 is exact Langevin).
    """

    snr: float = 0.16
    n_steps: int = 1
    scale_eps: float = 1.0
    stochastic: ClassVar[bool] = True

    def correct(self, model, x, t, *, generator=None):
        """Run the corrector at time ``t``; returns the corrected state."""
        for _ in range(self.n_steps):
            score = model(x, t).score
            z = noise_like(x, model.process, generator)

            def leaf(xi, si, zi):
                s_norm = si.flatten(1).norm(dim=1)
                z_norm = zi.flatten(1).norm(dim=1)
                step = 2 * safe_div(self.snr * z_norm, s_norm) ** 2
                noise = coef(torch.sqrt(2 * step), xi) * zi * self.scale_eps
                return xi + coef(step, xi) * si + noise

            x = tree_map(leaf, x, score, z)
        return x

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        return self.correct(model, x, t0, generator=generator), state


@dataclass(frozen=True)
class PredictorCorrector(StepRule):
    """Predictor-corrector sampling.

    Predictor-corrector sampling (Song et al. 2021, Algorithm 1): the corrector runs at t0,
    then the predictor moves to t1. Default: reverse diffusion + one Langevin step.
    """

    predictor: StepRule = field(default_factory=ReverseDiffusion)
    corrector: Langevin = field(default_factory=Langevin)
    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True

    def init(self, x):  # noqa: D102
        return self.predictor.init(x)

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        x = self.corrector.correct(model, x, t0, generator=generator)
        return self.predictor.step(model, x, t0, t1, state, generator=generator)

    def __str__(self) -> str:
        return f"PC({self.predictor}, {type(self.corrector).__name__})"


@dataclass(frozen=True)
class DDPMAncestral(StepRule):
    """DDPM ancestral sampling for any Gaussian process.

    Ancestral sampling from the Gaussian posterior q(x_t1 | x_t0, x0_hat) (Ho et al. 2020,
    arXiv:2006.11239, eq. 6-7), for any Gaussian process: with ``a = alpha0 / alpha1`` and
    ``s2 = sigma0^2 - a^2 sigma1^2``, mean ``a sigma1^2/sigma0^2 x + alpha1 s2/sigma0^2 x0`` and
    variance ``s2 sigma1^2 / sigma0^2``.
    """

    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        pred = model(x, t0)
        z = noise_like(x, model.process, generator)

        def leaf(xi, x0i, zi, p):
            a0, s0, a1, s1 = p.alpha(t0), p.sigma(t0), p.alpha(t1), p.sigma(t1)
            a = a0 / a1
            s2 = (s0**2 - a**2 * s1**2).clamp_min(0)
            c_x = a * s1**2 / s0**2
            c_0 = a1 * s2 / s0**2
            std = torch.sqrt(s2 * s1**2 / s0**2)
            return coef(c_x, xi) * xi + coef(c_0, xi) * x0i + coef(std, xi) * zi

        return tree_map(leaf, x, pred.x0, z, model.process), state


@dataclass(frozen=True)
class S4(StepRule):
    """The S4 solver of GDSS.

    The S4 solver of GDSS (Jo et al. 2022, arXiv:2202.02514, sec. 3.3 and Algorithm 2):
    Symmetric Splitting for Systems of SDEs, one network evaluation per step.

    Per step and per leaf: the score ``s`` at (x, t0) drives (1) a Langevin correction with the
    SNR step size (norms averaged over the batch, as in GDSS; for VP leaves times
    ``alpha = (alpha(t0) / alpha(t1))^2``, GDSS's ``1 - beta_i`` to first order but positive
    for any step, 1 otherwise) and (2) a Strang splitting of the reverse SDE: the linear part's
    exact transition from t0 to the midpoint, the score drift ``g^2(t0) s |dt|``, then the
    linear part from the midpoint to t1. The linear transition from t to s < t is
    ``x / a + sqrt(sigma_t^2 - a^2 sigma_s^2) z`` with ``a = alpha_t / alpha_s``.

    Attributes:
        snr: corrector signal-to-noise ratio (GDSS configs: 0.05 to 0.2).
        scale_eps: multiplies the corrector's noise (GDSS configs use 0.7 to 1.0).
    """

    snr: float = 0.1
    scale_eps: float = 1.0
    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        process = model.process
        score = model(x, t0).score
        dt = t0 - t1  # positive
        mid = t0 - 0.5 * dt
        z_corr = noise_like(x, process, generator)

        def correct(xi, si, zi, p):
            s_norm = si.flatten(1).norm(dim=1).mean()
            z_norm = zi.flatten(1).norm(dim=1).mean()
            vp = getattr(p, "variance_preserving", False)
            alpha = (p.alpha(t0) / p.alpha(t1)) ** 2 if vp else torch.ones_like(dt)
            step = 2 * alpha * (self.snr * z_norm / s_norm.clamp_min(_TINY_NORM)) ** 2
            return xi + coef(step, xi) * si + coef(torch.sqrt(2 * step), xi) * zi * self.scale_eps

        x = tree_map(correct, x, score, z_corr, process)
        x = self._linear(x, process, t0, mid, generator)
        x = tree_map(lambda xi, si, p: xi + coef(p.g2(t0) * dt, xi) * si, x, score, process)
        return self._linear(x, process, mid, t1, generator), state

    @staticmethod
    def _linear(x, process, t, s, generator):
        z = noise_like(x, process, generator)

        def leaf(xi, zi, p):
            a = p.alpha(t) / p.alpha(s)
            std = torch.sqrt((p.sigma(t) ** 2 - a**2 * p.sigma(s) ** 2).clamp_min(0))
            return coef(1 / a, xi) * xi + coef(std, xi) * zi

        return tree_map(leaf, x, z, process)


_TINY_NORM = 1e-12  # guards the corrector's step size against a zero score

"""Exact references for tests and benchmarks.

Exact references for tests and benchmarks: Gaussian and Gaussian-mixture data whose
denoisers, probability-flow ODE solutions and densities are known in closed form.

Public so that domain packages test their own samplers and objectives against the same exact
answers (``diffcore.testing.GaussianData(...).denoiser(process)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .predictions import Denoiser
from .processes.gaussian import GaussianProcess
from .tree import expand_like


@dataclass(frozen=True, eq=False)
class GaussianMixtureData:
    """Data ``sum_k w_k N(mu_k, diag(s_k^2))`` in dimension D.

    Attributes:
        weights: (K,) mixture weights (normalised on use).
        means: (K, D).
        stds: (K, D) per-dimension standard deviations.
    """

    weights: Tensor
    means: Tensor
    stds: Tensor

    def _params(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        w = self.weights.to(like.device, like.dtype)
        return (
            w / w.sum(),
            self.means.to(like.device, like.dtype),
            self.stds.to(like.device, like.dtype),
        )

    def sample(self, n: int, *, generator=None, dtype=torch.float64, device=None) -> Tensor:
        """(n, D) exact samples."""
        w, mu, s = self._params(torch.empty(0, dtype=dtype, device=device))
        k = torch.multinomial(w, n, replacement=True, generator=generator)
        z = torch.randn(n, mu.shape[1], generator=generator, dtype=dtype, device=device)
        return mu[k] + s[k] * z

    def _component_terms(self, x: Tensor, alpha: Tensor, sigma: Tensor):
        """Per-component log-likelihood of x_t and posterior means; x (B, D)."""
        w, mu, s = self._params(x)
        a = expand_like(alpha, x)[:, None, :] if alpha.ndim else alpha
        sg = expand_like(sigma, x)[:, None, :] if sigma.ndim else sigma
        var = a**2 * s[None] ** 2 + sg**2  # (B, K, D)
        diff = x[:, None, :] - a * mu[None]
        log_n = -0.5 * (diff**2 / var + torch.log(2 * math.pi * var)).sum(-1)  # (B, K)
        post_mean = mu[None] + a * s[None] ** 2 / var * diff  # E[x0 | x_t, k]
        return torch.log(w)[None] + log_n, post_mean

    def x0(self, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """E[x_0 | x_t = x] for ``x_t = alpha x_0 + sigma eps``; x (B, D)."""
        logits, post_mean = self._component_terms(x, alpha, sigma)
        resp = torch.softmax(logits, dim=1)
        return (resp[..., None] * post_mean).sum(1)

    def log_prob_t(self, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """Log p_t(x), (B,)."""
        logits, _ = self._component_terms(x, alpha, sigma)
        return torch.logsumexp(logits, dim=1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Data log-density log p_0(x), (B,)."""
        one = torch.ones((), dtype=x.dtype, device=x.device)
        return self.log_prob_t(x, one, 0 * one)

    def denoiser(self, process: GaussianProcess, prediction: str = "x0") -> Denoiser:
        """A :class:`Denoiser` with the exact prediction of ``kind`` under ``process``."""
        from .predictions import from_x0_eps

        def net(x: Tensor, t: Tensor) -> Tensor:
            t = t.to(torch.float64) if x.dtype != torch.float64 else t
            a, s = process.alpha(t), process.sigma(t)
            x0 = self.x0(x, a.to(x.dtype), s.to(x.dtype))
            if prediction == "x0":
                return x0
            eps = (x - expand_like(a, x) * x0) / expand_like(s, x)
            return from_x0_eps(x0, eps, t, process, prediction)

        return Denoiser(net, prediction, process)


@dataclass(frozen=True, eq=False)
class GaussianData(GaussianMixtureData):
    """A single Gaussian N(mu, diag(s^2)): its probability-flow ODE is linear and solvable."""

    @classmethod
    def create(cls, mean: Tensor, std: Tensor) -> GaussianData:
        """N(mean, diag(std^2)) from (D,) tensors."""
        mean = torch.as_tensor(mean, dtype=torch.float64)
        std = torch.as_tensor(std, dtype=torch.float64)
        return cls(weights=torch.ones(1, dtype=torch.float64), means=mean[None], stds=std[None])

    def flow(self, x: Tensor, t0: Tensor, t1: Tensor, process: GaussianProcess) -> Tensor:
        """Exact probability-flow map from time t0 to t1.

        Exact probability-flow map from time t0 to t1: the standardised value is conserved,
        ``x1 = alpha1 mu + std1 / std0 (x - alpha0 mu)``.
        """
        _, mu, s = self._params(x)
        t0 = torch.as_tensor(t0, dtype=torch.float64)
        t1 = torch.as_tensor(t1, dtype=torch.float64)
        a0, s0 = process.alpha(t0).to(x.dtype), process.sigma(t0).to(x.dtype)
        a1, s1 = process.alpha(t1).to(x.dtype), process.sigma(t1).to(x.dtype)
        std0 = torch.sqrt(a0**2 * s[0] ** 2 + s0**2)
        std1 = torch.sqrt(a1**2 * s[0] ** 2 + s1**2)
        return a1 * mu[0] + std1 / std0 * (x - a0 * mu[0])

    def marginal_moments(self, t: Tensor, process: GaussianProcess) -> tuple[Tensor, Tensor]:
        """Mean and std (D,) of x_t."""
        _, mu, s = self._params(torch.empty(0, dtype=torch.float64))
        t = torch.as_tensor(t, dtype=torch.float64)
        a, sg = process.alpha(t), process.sigma(t)
        return a * mu[0], torch.sqrt(a**2 * s[0] ** 2 + sg**2)

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


class _ExactDensity:
    """Shared by the exact mixtures: densities and denoisers from ``_component_terms`` / ``x0``."""

    def _component_terms(self, x: Tensor, alpha: Tensor, sigma: Tensor):
        raise NotImplementedError

    def x0(self, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """E[x_0 | x_t = x] for x_t = alpha x_0 + sigma eps."""
        raise NotImplementedError

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
class GaussianMixtureData(_ExactDensity):
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

    def log_responsibilities(self, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """Log p(k | x_t = x), (B, K): the exact (Bayes) classifier of the components at t."""
        logits, _ = self._component_terms(x, alpha, sigma)
        return torch.log_softmax(logits, dim=1)


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


@dataclass(frozen=True, eq=False)
class FullGaussianMixture(_ExactDensity):
    """Data ``sum_k w_k N(mu_k, Sigma_k)`` with full covariances, in dimension D.

    The exact posterior of a Gaussian-mixture prior under a linear measurement is of this kind
    (see :func:`linear_gaussian_posterior`); as a prior it gives correlated Gaussians whose
    conditionals are known in closed form.

    Attributes:
        weights: (K,) mixture weights (normalised on use).
        means: (K, D).
        covs: (K, D, D) symmetric positive definite covariances.
    """

    weights: Tensor
    means: Tensor
    covs: Tensor

    def __post_init__(self) -> None:
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covs.shape != (k, d, d):
            raise ValueError(
                f"shapes disagree: weights {tuple(self.weights.shape)}, means "
                f"{tuple(self.means.shape)}, covs {tuple(self.covs.shape)}; expected (K,), "
                "(K, D), (K, D, D)"
            )

    @classmethod
    def from_diagonal(cls, data: GaussianMixtureData) -> FullGaussianMixture:
        """The same mixture with its diagonal covariances written out."""
        return cls(weights=data.weights, means=data.means, covs=torch.diag_embed(data.stds.pow(2)))

    def _params(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        w = self.weights.to(like.device, like.dtype)
        return (
            w / w.sum(),
            self.means.to(like.device, like.dtype),
            self.covs.to(like.device, like.dtype),
        )

    def sample(self, n: int, *, generator=None, dtype=torch.float64, device=None) -> Tensor:
        """(n, D) exact samples."""
        w, mu, cov = self._params(torch.empty(0, dtype=dtype, device=device))
        k = torch.multinomial(w, n, replacement=True, generator=generator)
        z = torch.randn(n, mu.shape[1], generator=generator, dtype=dtype, device=device)
        chol = torch.linalg.cholesky(cov)
        return mu[k] + (chol[k] @ z[..., None])[..., 0]

    def mean(self) -> Tensor:
        """(D,) mean of the mixture."""
        w, mu, _ = self._params(self.means)
        return w @ mu

    def cov(self) -> Tensor:
        """(D, D) covariance of the mixture (within plus between components)."""
        w, mu, cov = self._params(self.means)
        m = w @ mu
        diff = mu - m
        return (w[:, None, None] * (cov + diff[:, :, None] * diff[:, None, :])).sum(0)

    def _component_terms(self, x: Tensor, alpha: Tensor, sigma: Tensor):
        """Log w_k N(x; alpha mu_k, alpha^2 S_k + sigma^2 I) (B, K) and E[x_0 | x, k] (B, K, D)."""
        w, mu, cov = self._params(x)
        b, d = x.shape
        a = torch.as_tensor(alpha, dtype=x.dtype, device=x.device).expand(b)[:, None, None, None]
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(b)[:, None, None, None]
        eye = torch.eye(d, dtype=x.dtype, device=x.device)
        var = a**2 * cov[None] + s**2 * eye  # (B, K, D, D)
        chol = torch.linalg.cholesky(var)
        diff = x[:, None, :] - a[..., 0] * mu[None]  # (B, K, D)
        sol = torch.cholesky_solve(diff[..., None], chol)[..., 0]
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        log_n = -0.5 * ((diff * sol).sum(-1) + logdet + d * math.log(2 * math.pi))
        post_mean = mu[None] + a[..., 0] * (cov[None] @ sol[..., None])[..., 0]
        return torch.log(w)[None] + log_n, post_mean

    def log_responsibilities(self, x: Tensor, alpha=1.0, sigma=0.0) -> Tensor:
        """Log p(k | x_t = x), (B, K); defaults give the components' posteriors given x_0."""
        logits, _ = self._component_terms(x, torch.as_tensor(alpha), torch.as_tensor(sigma))
        return torch.log_softmax(logits, dim=1)

    def x0(self, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """E[x_0 | x_t = x] for ``x_t = alpha x_0 + sigma eps``; x (B, D)."""
        logits, post_mean = self._component_terms(x, alpha, sigma)
        return (torch.softmax(logits, dim=1)[..., None] * post_mean).sum(1)


def linear_gaussian_posterior(
    prior: GaussianMixtureData | FullGaussianMixture,
    matrix: Tensor,
    y: Tensor,
    noise_std: float,
) -> FullGaussianMixture:
    """Exact posterior of a Gaussian-mixture prior given ``y = A x + n``, ``n ~ N(0, s_y^2 I)``.

    Per component (Bishop 2006, eq. 2.113-2.117): with ``S_y = A S_k A^T + s_y^2 I`` and gain
    ``G = S_k A^T S_y^{-1}``, the posterior mean is ``mu_k + G (y - A mu_k)``, the covariance
    ``S_k - G A S_k`` and the weight ``w_k N(y; A mu_k, S_y)`` (normalised).

    Args:
        prior: the prior mixture in dimension D.
        matrix: (M, D) the measurement matrix A.
        y: (M,) one measurement.
        noise_std: s_y > 0.

    Returns:
        The posterior as a :class:`FullGaussianMixture` with K components.
    """
    full = (
        prior
        if isinstance(prior, FullGaussianMixture)
        else FullGaussianMixture.from_diagonal(prior)
    )
    w, mu, cov = full._params(y)
    a = matrix.to(y.dtype)
    if a.ndim != 2 or a.shape[1] != mu.shape[1] or y.shape != (a.shape[0],):
        raise ValueError(
            f"expected A (M, {mu.shape[1]}) and y (M,), got A {tuple(a.shape)}, y {tuple(y.shape)}"
        )
    if noise_std <= 0:
        raise ValueError(f"`noise_std` must be > 0, got {noise_std}")
    s_y = a @ cov @ a.T + noise_std**2 * torch.eye(a.shape[0], dtype=y.dtype, device=y.device)
    chol = torch.linalg.cholesky(s_y)  # (K, M, M)
    resid = y[None] - mu @ a.T  # (K, M)
    sol = torch.cholesky_solve(resid[..., None], chol)[..., 0]
    gain_t = torch.cholesky_solve(a @ cov, chol)  # S_y^{-1} A S_k = G^T, (K, M, D)
    post_mean = mu + (cov @ a.T @ sol[..., None])[..., 0]
    post_cov = cov - (cov @ a.T) @ gain_t
    post_cov = 0.5 * (post_cov + post_cov.transpose(-1, -2))
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    log_ev = -0.5 * ((resid * sol).sum(-1) + logdet + a.shape[0] * math.log(2 * math.pi))
    post_w = torch.softmax(torch.log(w) + log_ev, dim=0)
    return FullGaussianMixture(weights=post_w, means=post_mean, covs=post_cov)

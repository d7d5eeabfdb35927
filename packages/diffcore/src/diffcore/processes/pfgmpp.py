r"""PFGM++ (Xu et al. 2023, arXiv:2302.04265): Poisson flow with D augmented dimensions.

The perturbation kernel is ``p_r(x | y) \propto (||x - y||^2 + r^2)^{-(N + D)/2}`` with
``r = sigma sqrt(D)`` (their eq. 4 and the alignment r = sigma sqrt(D) of sec. 4); as D -> inf
it becomes EDM's Gaussian kernel. Sampling follows their Algorithm 2: the radius is
``R = r sqrt(u / (1 - u))`` with ``u ~ Beta(N/2, D/2)``, the direction uniform on the sphere.
The backward ODE in ``sigma`` is EDM's, so every EDM sampler applies with an x_0 denoiser.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..tree import expand_like
from .gaussian import EDM


@dataclass(frozen=True, kw_only=True)
class PFGMPP(EDM):
    """PFGM++ with ``D`` extra dimensions on the EDM time axis (t = sigma).

    Defaults follow the paper's CIFAR-10 setting (D = 2048) and EDM's sigma range.
    """

    D: float = 2048.0

    def __post_init__(self) -> None:
        if not self.D > 0:
            raise ValueError(f"`D` must be positive, got {self.D}")

    def _perturbation(self, like: Tensor, sigma: Tensor, generator) -> Tensor:
        n = like[0].numel()
        b = like.shape[0]
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=like.device).expand(b)
        r = sigma * self.D**0.5
        # torch.distributions takes no generator: draw Beta(N/2, D/2) as G1 / (G1 + G2).
        g1 = _gamma(n / 2.0, b, generator, like.device)
        g2 = _gamma(self.D / 2.0, b, generator, like.device)
        u = g1 / (g1 + g2)
        radius = r * torch.sqrt(u / (1 - u))
        direction = torch.randn(
            like.shape, generator=generator, dtype=torch.float64, device=like.device
        )
        direction = direction / direction.flatten(1).norm(dim=1).reshape(
            (-1,) + (1,) * (like.ndim - 1)
        )
        noise = expand_like(radius, direction) * direction
        return self.project(noise.to(like.dtype))

    def sample_marginal(self, x0, t, *, generator=None):  # noqa: D102
        noise = self._perturbation(x0, torch.as_tensor(t), generator)
        return x0 + noise, noise

    def prior_sample(self, like, *, generator=None):  # noqa: D102
        return self._perturbation(like, torch.tensor(self.sigma_max), generator)

    def prior_log_prob(self, x: Tensor) -> Tensor:  # noqa: D102
        raise NotImplementedError("PFGM++ prior density is not Gaussian; not implemented yet")


_TINY = 1e-300  # keeps log() finite for rejected float64 proposals


def _gamma(shape: float, n: int, generator, device) -> Tensor:
    """Gamma(shape, 1) draws from ``generator`` (Marsaglia & Tsang 2000, with boosting)."""
    boost = shape < 1
    k = shape + 1 if boost else shape
    d = k - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5
    out = torch.empty(n, dtype=torch.float64, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    while not bool(done.all()):
        z = torch.randn(n, generator=generator, dtype=torch.float64, device=device)
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=device)
        v = (1 + c * z) ** 3
        log_v = torch.log(v.clamp_min(_TINY))
        ok = (v > 0) & (torch.log(u.clamp_min(_TINY)) < 0.5 * z**2 + d - d * v + d * log_v)
        take = ok & ~done
        out = torch.where(take, d * v, out)
        done = done | ok
    if boost:
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=device)
        out = out * u ** (1.0 / shape)
    return out

"""Inversion: map data to the noise that a deterministic sampler turns back into it.

DDIM inversion (Song et al. 2021, arXiv:2010.02502, sec. 4.3; Dhariwal & Nichol 2021), its
higher-order versions with DPM-Solver / DPM-Solver++ (Lu et al. 2022) and rectified-flow
inversion with RF-Solver (Wang et al. 2024, arXiv:2411.04746) are all the same thing here: the
one :func:`~diffcore.samplers.sample` loop run with a deterministic rule on an increasing grid.

Also here: DPM-Encoder latents (the noises of a stochastic sampler that reproduce given data,
CycleDiffusion) and DIRE reconstruction errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .samplers import SampleOutput, StepRule, sample
from .samplers.base import noise_like
from .tree import Tree, tree_map


def invert(
    model: Any,
    x0: Tree,
    grid: Tensor,
    rule: StepRule,
    *,
    progress: bool = True,
    return_trajectory: bool = False,
) -> SampleOutput:
    """Integrate the probability-flow ODE from data to noise.

    Args:
        model: a Denoiser (or guidance wrapper without randomness).
        x0: data (B, *S) or a tree, taken to sit at time ``min(grid)``.
        grid: (n + 1,) sampling grid in either order; inversion runs it increasing.
        rule: a deterministic step rule (DDIM(), DPMSolverPP2M(), Midpoint() for RF-Solver...).
        progress: show a progress bar.
        return_trajectory: keep the state after every step.

    Returns:
        The :class:`~diffcore.samplers.SampleOutput` whose ``x`` is the latent at ``max(grid)``;
        ``sample(model, out.x, grid_decreasing, rule)`` reconstructs ``x0`` up to the solver's
        error.

    Raises:
        ValueError: for a stochastic rule.
    """
    grid = torch.as_tensor(grid)
    ascending = grid if bool((grid[1:] > grid[:-1]).all()) else grid.flip(0)
    return sample(
        model, x0, ascending, rule, progress=progress, return_trajectory=return_trajectory
    )


@dataclass
class DPMLatents:
    """The latent code of DPM-Encoder: a start state and one noise per step.

    Attributes:
        x_start: the state at ``max(grid)`` (a tree like the data).
        noises: one tree per step, the noise the stochastic DDIM step must draw to land on
            the encoded trajectory. A step with no noise (one into sigma = 0) stores the
            residual that is added instead, so decoding is exact.
    """

    x_start: Tree
    noises: list[Tree]


def _ddim_coefficients(p: Any, t0: Tensor, t1: Tensor, eta: float):
    """(alpha1, sigma1, c, sqrt(sigma1^2 - c^2)) of DDIM(eta) from t0 to t1 < t0."""
    a1, s1 = p.alpha(t1), p.sigma(t1)
    h = p.lambda_(t1) - p.lambda_(t0)
    c = eta * s1 * torch.sqrt(-torch.expm1(-2 * h))
    return a1, s1, c, torch.sqrt((s1**2 - c**2).clamp_min(0))


def dpm_encode(
    model: Any,
    x0: Tree,
    grid: Tensor,
    *,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
) -> DPMLatents:
    """DPM-Encoder (Wu & De la Torre 2023, CycleDiffusion, arXiv:2210.05559, sec. 3.1).

    A trajectory ``x_T -> ... -> x0`` is drawn from the forward process's DDIM(eta) posteriors
    ``q(x_t1 | x_t0, x0) = N(alpha1 x0 + sqrt(sigma1^2 - c^2) (x_t0 - alpha0 x0) / sigma0, c^2)``
    and each step's noise is solved for so that the model's DDIM(eta) step lands on it:
    ``z = (x_t1 - alpha1 x0_hat - sqrt(sigma1^2 - c^2) eps_hat) / c``. Decoding the latents
    with :func:`dpm_decode` (the same model, grid and eta) returns ``x0`` exactly; decoding them
    with another model (e.g. another domain's) is CycleDiffusion's unpaired translation.

    Args:
        model: a Denoiser (or guidance wrapper).
        x0: data (B, *S) or a tree.
        grid: (n + 1,) decreasing sampling times, shared by the batch.
        eta: DDIM stochasticity, > 0 (1 is DDPM ancestral sampling).
        generator: source of the encoder's random trajectory.

    Returns:
        The :class:`DPMLatents` of ``x0``.
    """
    if eta <= 0:
        raise ValueError(
            f"`eta` must be > 0 (the latents are a random sampler's noises), got {eta}"
        )
    grid = torch.as_tensor(grid, dtype=torch.float64)
    if grid.ndim != 1 or not bool((grid[1:] < grid[:-1]).all()):
        raise ValueError("`grid` must be a decreasing (n + 1,) sampling grid")
    process = model.process
    x = tree_map(
        lambda xi, zi, p: p.alpha(grid[0]).to(xi.dtype) * xi + p.sigma(grid[0]).to(xi.dtype) * zi,
        x0,
        noise_like(x0, process, generator),
        process,
    )
    x_start, noises = x, []
    for i in range(grid.shape[0] - 1):
        t0, t1 = grid[i], grid[i + 1]
        pred = model(x, t0)

        def forward(xt, x0i, fresh, p, t0=t0, t1=t1):
            a1, _, c, rest = _ddim_coefficients(p, t0, t1, eta)
            eps_true = (xt - p.alpha(t0).to(xt.dtype) * x0i) / p.sigma(t0).to(xt.dtype)
            return a1.to(xt.dtype) * x0i + rest.to(xt.dtype) * eps_true + c.to(xt.dtype) * fresh

        def noise(nxt, x0hat, epshat, p, t0=t0, t1=t1):
            a1, _, c, rest = _ddim_coefficients(p, t0, t1, eta)
            mean = a1.to(nxt.dtype) * x0hat + rest.to(nxt.dtype) * epshat
            return (nxt - mean) / c.to(nxt.dtype) if bool(c > 0) else nxt - mean

        x = tree_map(forward, x, x0, noise_like(x0, process, generator), process)
        noises.append(tree_map(noise, x, pred.x0, pred.eps, process))
    return DPMLatents(x_start=x_start, noises=noises)


@dataclass(frozen=True)
class _ReplayDDIM(StepRule):
    """DDIM(eta) drawing its noises from a list instead of a generator (DPM-Encoder decoding)."""

    eta: float
    noises: tuple[Tree, ...]

    def init(self, x: Tree) -> int:  # noqa: D102
        return 0

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        pred = model(x, t0)

        def leaf(xi, x0i, ei, zi, p):
            a1, _, c, rest = _ddim_coefficients(p, t0, t1, self.eta)
            mean = a1.to(xi.dtype) * x0i + rest.to(xi.dtype) * ei
            return mean + (c.to(xi.dtype) * zi if bool(c > 0) else zi)

        return tree_map(leaf, x, pred.x0, pred.eps, self.noises[state], model.process), state + 1

    def __str__(self) -> str:
        return f"DPM-Decoder(eta={self.eta})"


def dpm_decode(
    model: Any, latents: DPMLatents, grid: Tensor, *, eta: float = 1.0, progress: bool = False
) -> Tree:
    """DDIM(eta) from ``latents.x_start`` with the stored noises: inverse of :func:`dpm_encode`.

    With the encoding model this returns the encoded data exactly; with another model it
    translates (CycleDiffusion).
    """
    grid = torch.as_tensor(grid, dtype=torch.float64)
    if len(latents.noises) != grid.shape[0] - 1:
        raise ValueError(
            f"the latents hold {len(latents.noises)} step noises for a grid of "
            f"{grid.shape[0] - 1} steps"
        )
    rule = _ReplayDDIM(eta=eta, noises=tuple(latents.noises))
    return sample(model, latents.x_start, grid, rule, progress=progress).x


def reconstruction_error(
    model: Any, x0: Tensor, grid: Tensor, rule: StepRule, *, progress: bool = False
) -> Tensor:
    """DIRE (Wang et al. 2023, arXiv:2303.09295): ``|x0 - sample(invert(x0))|`` per element.

    The image is inverted to noise with the deterministic ``rule`` and reconstructed with it;
    images the model generated itself come back closer than real ones, which is what DIRE's
    detector learns from. Returns a tensor shaped like ``x0`` (average it per sample for a
    score).
    """
    grid = torch.as_tensor(grid, dtype=torch.float64)
    descending = grid if bool((grid[1:] < grid[:-1]).all()) else grid.flip(0)
    latent = invert(model, x0, descending, rule, progress=progress).x
    back = sample(model, latent, descending, rule, progress=progress).x
    return (x0 - back).abs()

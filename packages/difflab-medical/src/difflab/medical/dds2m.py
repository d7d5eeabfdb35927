"""DDS2M: self-supervised hyperspectral restoration inside a reverse diffusion.

Miao, Zhang, Zhang, Yang, Zhao, Xie, "DDS2M: Self-Supervised Denoising Diffusion
Spatio-Spectral Model for Hyperspectral Image Restoration", ICCV 2023 (arXiv:2303.06682).
No training data: the x0-prediction of the reverse diffusion is a small *variational
spatio-spectral module* (VS-module) fitted on the fly, a low-rank product

    X[c, h, w] = sum_r  S_r[h, w] * E_r[c],

of a spatial generator (a DIP-style convolutional net from a fixed noise input, giving the R
abundance-like maps S) and spectral coefficient nets (one small MLP per component, giving the
R spectra E). At every step of diffcore's sampling loop the module takes a few Adam steps on the
negative log posterior of x0 given the current state x_t and the observation y,

    ||A f - y||^2 / (2 sigma_y^2) + ||alpha_t f - x_t||^2 / (2 sigma_t^2),

and its output f is returned as the x0 prediction; a diffcore step rule (DDPM ancestral by
default) moves x_t to the next time. The noise injected by the diffusion perturbs the fit at
every step, which is what keeps the deep image prior from over-fitting the noise (paper,
sec. 3.3). The VS-module is per-run state owned by :func:`restore`, never by a step rule.

Baselines: :func:`tv_denoise` (scikit-image Chambolle TV) and :func:`low_rank_restore`
(truncated SVD of the unfolded cube, with projected gradient steps for completion and SR).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from diffcore import sample
from diffcore.operators import LinearOperator
from diffcore.predictions import Prediction
from diffcore.processes import LinearVP
from diffcore.samplers.sde import DDPMAncestral

__all__ = [
    "DDS2MConfig",
    "VSModule",
    "VSDenoiser",
    "low_rank_restore",
    "restore",
    "tv_denoise",
]


@dataclass(frozen=True, kw_only=True)
class DDS2MConfig:
    """Settings of :func:`restore`.

    Attributes:
        rank: R, number of spatio-spectral components.
        steps: reverse-diffusion steps.
        fit_iters: Adam iterations of the VS-module per step.
        lr: Adam learning rate.
        noise_std: sigma_y, the measurement noise std assumed in the data term (a floor of
            0.01 for noise-free completion / SR keeps the two terms on one scale).
        width: channels of the spatial generator.
        t_start: the diffusion starts at this time (< 1 skips the pure-noise phase).
        average_last: the result is the mean of the module's outputs at the last this many
            steps (an ensemble over the diffusion's perturbations; 1: the final output).
    """

    # Defaults chosen on 32x32x31 synthetic cubes, sigma = 0.1 (grid over fit_iters {5, 10,
    # 20}, lr {2e-3, 5e-3}, width {16, 32}, noise_std {0.1, 0.15}, average_last {1, 10}, three
    # seeds; see the package README).
    rank: int = 4
    steps: int = 40
    fit_iters: int = 10
    lr: float = 5e-3
    noise_std: float = 0.1
    width: int = 16
    t_start: float = 1.0
    average_last: int = 10


class VSModule(nn.Module):
    """The variational spatio-spectral module: f = einsum('rc,rhw->chw', E, S).

    Spatial generator: fixed noise (width, H/4, W/4) -> conv, 2x bilinear up, conv, 2x up, conv
    -> softplus -> (R, H, W). Spectral nets: a fixed (R, 16) code -> per-component MLP ->
    (R, C). Everything but the two fixed codes is trained.
    """

    def __init__(
        self,
        bands: int,
        size: tuple[int, int],
        rank: int,
        *,
        width: int = 32,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        h, w = size
        if h % 4 or w % 4:
            raise ValueError(f"H and W must be multiples of 4, got {size}.")
        self.register_buffer("code_s", torch.rand(1, width, h // 4, w // 4, generator=generator))
        self.register_buffer("code_c", torch.randn(rank, 16, generator=generator))

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect"),
                nn.BatchNorm2d(cout),
                nn.LeakyReLU(0.2),
            )

        self.spatial = nn.Sequential(
            block(width, width),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            block(width, width),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            block(width, width),
            nn.Conv2d(width, rank, 1),
        )
        self.spectral = nn.Sequential(
            nn.Linear(16, 64), nn.LeakyReLU(0.2), nn.Linear(64, bands)
        )  # shared weights, one code per component
        if generator is not None:
            with torch.no_grad():
                for p in self.parameters():
                    if p.ndim > 1:
                        bound = 1 / math.sqrt(p[0].numel())
                        p.copy_(torch.rand(p.shape, generator=generator) * 2 * bound - bound)

    def components(self) -> tuple[Tensor, Tensor]:
        """(S, E): abundance-like maps (R, H, W) and spectra (R, C)."""
        s = nn.functional.softplus(self.spatial(self.code_s))[0]
        e = self.spectral(self.code_c)
        return s, e

    def forward(self) -> Tensor:
        """The cube (C, H, W)."""
        s, e = self.components()
        return torch.einsum("rc,rhw->chw", e, s)


class VSDenoiser:
    """A diffcore model ``(x, t) -> Prediction`` whose x0 is the VS-module fitted at (x, t).

    Holds the per-run state (the module and its optimiser); build one per restoration.

    Args:
        module: the VS-module.
        op: forward operator on (1, C, H, W) cubes.
        y: observation.
        process: the diffusion process (VP).
        config: fitting settings.
    """

    def __init__(
        self,
        module: VSModule,
        op: LinearOperator,
        y: Tensor,
        process: Any,
        config: DDS2MConfig,
        bar: Any = None,
    ) -> None:
        self.module = module
        self.op = op
        self.y = y
        self.process = process
        self.config = config
        self.opt = torch.optim.Adam(module.parameters(), lr=config.lr)
        self.nfe = 0
        self.bar = bar
        self.outputs: list[Tensor] = []  # x0 predictions, newest last

    def __call__(self, x: Tensor, t: Tensor | float) -> Prediction:
        """Fit the module to (y, x_t) for ``fit_iters`` steps; return its output as x0."""
        t = torch.as_tensor(t, dtype=torch.float64)
        a = float(self.process.alpha(t).reshape(-1)[0])
        s = float(self.process.sigma(t).reshape(-1)[0])
        sy = max(self.config.noise_std, 0.01)
        n_y = self.y.numel()
        self.module.train()
        with torch.enable_grad():
            for _ in range(self.config.fit_iters):
                self.opt.zero_grad(set_to_none=True)
                f = self.module()[None]
                loss = ((self.op.A(f) - self.y) ** 2).sum() / (2 * sy**2 * n_y)
                loss = loss + ((a * f - x.detach()) ** 2).sum() / (2 * s**2 * n_y)
                loss.backward()
                self.opt.step()
        with torch.no_grad():
            f = self.module()[None].to(x.dtype)
        self.outputs.append(f)
        del self.outputs[: -max(1, self.config.average_last)]
        self.nfe += 1
        if self.bar is not None:
            self.bar.update(1)
        return Prediction(raw=f, x=x, t=t, process=self.process, kind="x0")


def restore(
    op: LinearOperator,
    y: Tensor,
    shape: tuple[int, int, int],
    config: DDS2MConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> Tensor:
    """DDS2M restoration of a (C, H, W) cube from ``y = op(x) + noise``.

    Args:
        op: ``Identity()`` (denoising), a ``Mask`` (completion) or ``SpatialDownsample``
            (super-resolution), acting on (1, C, H, W).
        y: observation, (1, C, H, W) or the operator's output shape.
        shape: (C, H, W) of the cube.
        config: settings.
        generator: seeds the module's weights and the sampler's noise.
        progress: show a progress bar over the diffusion steps.

    Returns:
        (C, H, W) restored cube (the VS-module's final output).
    """
    cfg = config or DDS2MConfig()
    c, h, w = shape
    module = VSModule(c, (h, w), cfg.rank, width=cfg.width, generator=generator)
    process = LinearVP()
    bar = tqdm(total=cfg.steps, desc="DDS2M", disable=not progress, leave=False)
    model = VSDenoiser(module, op, y, process, cfg, bar)
    x = process.prior_sample(torch.zeros(1, c, h, w), generator=generator)
    t_hi = min(cfg.t_start, process.t_max)
    grid = torch.linspace(t_hi, process.t_min, cfg.steps + 1, dtype=torch.float64)
    if t_hi < process.t_max:  # start from the noised zero-filled estimate
        x0 = op.A_adjoint(y).reshape(1, c, h, w)
        x, _ = process.sample_marginal(x0, grid[0], generator=generator)
    sample(model, x, grid, DDPMAncestral(), generator=generator, progress=False)
    bar.close()
    with torch.no_grad():
        final = module()[None]
        keep = [*model.outputs, final][-max(1, cfg.average_last) :]
        return torch.stack(keep).mean(0)[0]


def tv_denoise(y: Tensor, *, weight: float = 0.1) -> Tensor:
    """Baseline: scikit-image's Chambolle TV denoising of a (C, H, W) cube (3-D TV)."""
    from skimage.restoration import denoise_tv_chambolle

    out = denoise_tv_chambolle(y.detach().double().cpu().numpy(), weight=weight)
    return torch.as_tensor(out, dtype=y.dtype)


def low_rank_restore(
    op: LinearOperator, y: Tensor, shape: tuple[int, int, int], rank: int, *, iters: int = 100
) -> Tensor:
    """Baseline: truncated SVD of the (C, H W) unfolding.

    For denoising (``op`` the identity) one projection; otherwise projected gradient
    ``x <- P_rank(x - A^T (A x - y))`` from ``A^T y`` (``iters`` steps, step size 1: fine for
    masks and averaging operators of norm <= 1).
    """
    c = shape[0]

    def project(x: Tensor) -> Tensor:
        u, s, vh = torch.linalg.svd(x.reshape(c, -1).double(), full_matrices=False)
        return ((u[:, :rank] * s[:rank]) @ vh[:rank]).reshape(shape).to(x.dtype)

    x = op.A_adjoint(y).reshape(shape)
    from .operators import Identity

    if isinstance(op, Identity):
        return project(x)
    for _ in range(iters):
        grad = op.A_adjoint(op.A(x[None]) - y).reshape(shape)
        x = project(x - grad)
    return x

"""DiffusionMBIR: 3-D inverse problems with a 2-D slice diffusion prior and z-TV.

Chung, Ryu, McCann, Ye, "Solving 3D Inverse Problems using Pre-trained 2D Diffusion Models",
CVPR 2023 (arXiv:2211.10655). A score network trained on 2-D axial slices is run on all the
slices of a volume at once (a batch), with the predictor-corrector sampler (their Algorithm 2,
VE-SDE). After the predictor and after the corrector, one ADMM iteration for

    min_x  1/2 ||A x - y||^2 + lam ||D_z x||_1

couples the slices (D_z: finite differences along z): a conjugate-gradient data-consistency
x-update, a soft-threshold z-update and a dual update, with the ADMM variables z, u carried
from step to step ("variable sharing", their sec. 3.2).

Here the ADMM part is :class:`ADMMTV`, a diffcore step rule that wraps diffcore's
:class:`~diffcore.samplers.sde.PredictorCorrector` (or any inner rule) and is run by diffcore's
one ``sample`` loop. ``rho=0`` turns the z-TV off: the slice-by-slice baseline (data
consistency only, each slice on its own). :func:`tv_reconstruct` is the TV-only baseline and
:func:`~difflab.medical.operators.fbp` the analytic one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from diffcore import Denoiser, DenoisingScoreMatching, sample
from diffcore.nets.unet import UNet
from diffcore.operators import LinearOperator, conjugate_gradient
from diffcore.processes import VE, LinearVP
from diffcore.samplers.base import StepRule
from diffcore.samplers.sde import Langevin, PredictorCorrector, ReverseDiffusion
from diffcore.train import EMA, fit, from_pretrained, save_pretrained

__all__ = [
    "PRESETS",
    "ADMMState",
    "ADMMTV",
    "MBIRConfig",
    "PriorConfig",
    "dz",
    "dz_adjoint",
    "load_prior",
    "reconstruct",
    "save_prior",
    "train_prior",
    "tv_reconstruct",
    "with_steps",
]

PRIOR_FILE = "prior.json"
# Numerical guard: a tiny Tikhonov term keeps the ADMM normal equations positive definite.
# Without it CG on a singular system (A^T A is a projection for MRI; A^T A + rho D^T D has
# z-constant null-space images for sparse-view CT) amplifies round-off in the null space.
_CG_DAMPING = 1e-3


# ---- finite differences -------------------------------------------------------------------


def dz(x: Tensor, axis: int = 0) -> Tensor:
    """Forward differences of a volume along ``axis``: (.., D, ..) -> (.., D - 1, ..)."""
    return x.narrow(axis, 1, x.shape[axis] - 1) - x.narrow(axis, 0, x.shape[axis] - 1)


def dz_adjoint(g: Tensor, axis: int = 0) -> Tensor:
    """Adjoint of :func:`dz`: (.., D - 1, ..) -> (.., D, ..)."""
    pad = [0, 0] * (g.ndim - 1 - axis % g.ndim) + [1, 1]
    gp = torch.nn.functional.pad(g, pad)
    return gp.narrow(axis, 0, g.shape[axis] + 1) - gp.narrow(axis, 1, g.shape[axis] + 1)


def _soft(v: Tensor, thr: float) -> Tensor:
    return torch.sign(v) * (v.abs() - thr).clamp_min(0)


# ---- the ADMM-TV step rule ----------------------------------------------------------------


@dataclass
class ADMMState:
    """Solver state of :class:`ADMMTV`: the inner rule's state and the shared ADMM variables.

    Attributes:
        inner: state of the wrapped rule.
        z: (D - 1, H, W) split variable z ~ D_z x (None before the first update).
        u: (D - 1, H, W) scaled dual variable.
    """

    inner: Any
    z: Tensor | None = None
    u: Tensor | None = None


@dataclass(frozen=True, eq=False)
class ADMMTV(StepRule):
    """A step rule that follows every move of ``inner`` with one ADMM-TV(z) iteration.

    The state x is the batch of axial slices (D, 1, H, W) of one volume; ``op`` acts on
    (D, H, W). With ``inner`` a :class:`PredictorCorrector` the ADMM iteration runs after the
    corrector and again after the predictor (DiffusionMBIR, Algorithm 2); any other rule gets
    one iteration after its step.

    x-update: ``(A^T A + rho D^T D) x = A^T y + rho D^T (z - u)`` by ``cg_steps`` conjugate-
    gradient iterations warm-started at the sample (so the unmeasured part stays the prior's);
    z-update: ``z = soft(D x + u, lam / rho)``; dual: ``u += D x - z``.

    Attributes:
        op: the forward operator, (D, H, W) -> measurements.
        y: the measurements.
        inner: the diffusion step rule (default: reverse diffusion + one Langevin step).
        rho: ADMM penalty; 0 gives plain data consistency per slice (no z-TV).
        lam: TV weight.
        cg_steps: CG iterations per x-update.
        share: carry z and u from step to step (DiffusionMBIR's variable sharing). Without
            it every iteration starts from ``z = soft(D_z x, lam / rho)``, ``u = 0`` at the
            current sample, so the x-update cannot pull the slices back to the stale (noisier)
            differences of earlier steps in the null space of A.
    """

    op: LinearOperator
    y: Tensor
    inner: StepRule = field(default_factory=PredictorCorrector)
    rho: float = 1.0
    lam: float = 0.05
    cg_steps: int = 5
    share: bool = True
    stochastic: ClassVar[bool] = True

    def init(self, x: Tensor) -> ADMMState:  # noqa: D102
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"the state must be slices (D, 1, H, W), got {tuple(x.shape)}.")
        return ADMMState(inner=self.inner.init(x))

    def admm(self, x: Tensor, z: Tensor | None, u: Tensor | None):
        """One ADMM iteration from the volume of slices ``x`` (D, 1, H, W)."""
        vol = x[:, 0]
        y = self.y.to(vol.dtype)
        rho = self.rho
        if z is None or u is None:
            z = dz(vol)
            u = torch.zeros_like(z)
        elif not self.share and rho > 0:
            z = _soft(dz(vol), self.lam / rho)
            u = torch.zeros_like(z)

        def normal(v: Tensor, damping: float = _CG_DAMPING) -> Tensor:
            out = self.op.A_adjoint(self.op.A(v[0])) + damping * v[0]
            if rho > 0:
                out = out + rho * dz_adjoint(dz(v[0]))
            return out[None]

        rhs = self.op.A_adjoint(y)
        if rho > 0:
            rhs = rhs + rho * dz_adjoint(z - u)
        res = rhs[None] - normal(vol[None], 0.0)  # damping acts on the update only
        delta = conjugate_gradient(normal, res, steps=self.cg_steps)
        vol = vol + delta[0]
        if rho > 0:
            d = dz(vol)
            z = _soft(d + u, self.lam / rho)
            u = u + d - z
        return vol[:, None], z, u

    def step(self, model, x, t0, t1, state, *, generator=None):  # noqa: D102
        z, u = state.z, state.u
        inner_state = state.inner
        if isinstance(self.inner, PredictorCorrector):
            x = self.inner.corrector.correct(model, x, t0, generator=generator)
            x, z, u = self.admm(x, z, u)
            x, inner_state = self.inner.predictor.step(
                model, x, t0, t1, inner_state, generator=generator
            )
        else:
            x, inner_state = self.inner.step(model, x, t0, t1, inner_state, generator=generator)
        x, z, u = self.admm(x, z, u)
        return x, ADMMState(inner=inner_state, z=z, u=u)

    def __str__(self) -> str:
        return f"ADMMTV({self.inner}, rho={self.rho:g})"


# ---- configs ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PriorConfig:
    """The 2-D slice prior: process, network and training settings.

    Attributes:
        process: ``"ve"`` (DiffusionMBIR's choice) or ``"vp"`` (linear VP).
        sigma_max: VE's largest noise level (about the largest distance between training
            slices, Song & Ermon 2020's technique 1); ignored for VP.
        unet: diffcore UNet preset.
        model_channels: UNet width.
        steps: optimiser steps; batch_size, lr: training settings.
    """

    process: str = "ve"
    sigma_max: float = 10.0
    sigma_min: float = 0.01
    unet: str = "tiny"
    model_channels: int = 32
    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    ema_decay: float = 0.995

    def make_process(self) -> VE | LinearVP:
        """The diffcore process."""
        if self.process == "ve":
            return VE(sigma_min=self.sigma_min, sigma_max=self.sigma_max)
        if self.process == "vp":
            return LinearVP()
        raise ValueError(f"`process` must be 've' or 'vp', got {self.process!r}.")


@dataclass(frozen=True, kw_only=True)
class MBIRConfig:
    """Sampler and ADMM settings of :func:`reconstruct`.

    Attributes:
        steps: predictor steps (DiffusionMBIR uses 2000 for VE; fewer suffice at 32^3).
        snr: Langevin corrector signal-to-noise ratio (0.16 in DiffusionMBIR's CT configs).
        rho, lam: ADMM penalty and z-TV weight (rho = 0: slice-by-slice, no z-TV).
        cg_steps: CG iterations per ADMM x-update.
        share: carry the ADMM variables between steps (see :class:`ADMMTV`).
    """

    steps: int = 100
    snr: float = 0.16
    rho: float = 2.0
    lam: float = 0.05
    cg_steps: int = 5
    share: bool = True


PRESETS: dict[str, MBIRConfig] = {
    # Chosen on 32^3 ellipsoid phantoms with a 500-step prior and 100 sampler steps (grid rho in
    # {0.5, 1, 2, 5, 10}, lam in {0.02, 0.05, 0.1, 0.2}, CG 2 or 5 steps; package README).
    # DiffusionMBIR's own values (lam = 0.04, rho = 10, N = 2000) assume their Radon scaling
    # and 256^2 slices. With shared ADMM variables, the x-update pulls D_z x towards the z of
    # earlier, noisier steps wherever A measures nothing, which keeps the noise in x_t: the run
    # ends far from the data (PSNR < 0 dB, not NaN). That happened for 8 views at rho 5, for
    # 4 views at rho 2, for 2 views at rho 0.5 and for MRI x4 at rho 1 and 0.008. Without
    # sharing (`share=False`) 2-view CT and MRI work; 8-view CT is better with sharing.
    "ct": MBIRConfig(steps=100, snr=0.16, rho=2.0, lam=0.05, cg_steps=5),  # 8 views
    "ct-4": MBIRConfig(steps=100, snr=0.16, rho=1.0, lam=0.05, cg_steps=5),  # 4 views
    "ct-2": MBIRConfig(steps=100, snr=0.16, rho=0.5, lam=0.0125, cg_steps=5, share=False),
    "ct-limited": MBIRConfig(steps=100, snr=0.16, rho=2.0, lam=0.05, cg_steps=5),  # 90 of 180
    "mri": MBIRConfig(steps=100, snr=0.16, rho=0.5, lam=0.0125, cg_steps=5, share=False),  # x4
    # The slice-by-slice baseline: the same sampler with data consistency only.
    "slice": MBIRConfig(steps=100, snr=0.16, rho=0.0, lam=0.0, cg_steps=5),
}


# ---- the prior ----------------------------------------------------------------------------


def _unet(cfg: PriorConfig, generator: torch.Generator | None = None) -> UNet:
    groups = min(8, cfg.model_channels)
    return UNet.from_preset(
        cfg.unet,
        in_channels=1,
        model_channels=cfg.model_channels,
        head_channels=cfg.model_channels,
        norm_groups=groups,
        generator=generator,
    )


def train_prior(
    volumes: Tensor,
    config: PriorConfig | None = None,
    *,
    seed: int = 0,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> Denoiser:
    """Train a 2-D score prior on the axial slices of ``volumes`` with diffcore's ``fit``.

    Args:
        volumes: (n, D, H, W) training volumes in [0, 1] (e.g. :func:`random_ellipsoids`).
        config: process, network and training settings.
        seed: fixes initial weights, data order and noise.
        out_dir: where ``fit`` writes its log and checkpoint; the EMA prior is saved there
            too (:func:`save_prior`) when given.
        progress: show progress bars.
        device: where to train (default CPU).

    Returns:
        The EMA network as an eps-predicting :class:`~diffcore.Denoiser` (eval mode).
    """
    cfg = config or PriorConfig()
    if volumes.ndim != 4:
        raise ValueError(f"`volumes` must be (n, D, H, W), got {tuple(volumes.shape)}.")
    slices = volumes.reshape(-1, 1, *volumes.shape[-2:]).float()
    slices = slices[slices.flatten(1).amax(1) > 0]  # empty slices teach nothing
    process = cfg.make_process()
    net = _unet(cfg, torch.Generator().manual_seed(seed)).to(device or "cpu")
    slices = slices.to(device or "cpu")
    objective = DenoisingScoreMatching(process, prediction="eps")
    ema = EMA(net, decay=cfg.ema_decay)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    fit(
        net,
        lambda m, b, g: objective(m, b, generator=g),
        slices,
        steps=cfg.steps,
        optimizer=opt,
        batch_size=min(cfg.batch_size, len(slices)),
        ema=ema,
        grad_clip=1.0,
        seed=seed,
        out_dir=out_dir,
        progress=progress,
        log_every=50,
        config=asdict(cfg),
    )
    ema.copy_to(net)
    net.eval()
    den = Denoiser(net, "eps", process)
    if out_dir is not None:
        save_prior(den, Path(out_dir) / "prior", cfg)
    return den


def save_prior(den: Denoiser, path: str | os.PathLike[str], config: PriorConfig) -> Path:
    """Save a prior as diffcore pretrained folder (safetensors) plus ``prior.json``."""
    path = Path(path)
    save_pretrained(den.net, path)  # type: ignore[arg-type]
    (path / PRIOR_FILE).write_text(json.dumps(asdict(config), indent=1))
    return path


def load_prior(path: str | os.PathLike[str]) -> Denoiser:
    """Load a prior written by :func:`save_prior` / :func:`train_prior` (no unpickling)."""
    path = Path(path)
    meta = path / PRIOR_FILE
    if not meta.is_file():
        raise FileNotFoundError(
            f"{str(path)!r} is not a difflab-medical prior (no {PRIOR_FILE}); train one with "
            "`train_prior(..., out_dir=...)` or `difflab medical ct-recon --train-quick`."
        )
    cfg = PriorConfig(**json.loads(meta.read_text()))
    net = from_pretrained(UNet, path)
    return Denoiser(net, "eps", cfg.make_process())


# ---- reconstruction -----------------------------------------------------------------------


def reconstruct(
    op: LinearOperator,
    y: Tensor,
    shape: tuple[int, int, int],
    prior: Denoiser,
    config: MBIRConfig | str = "ct",
    *,
    generator: torch.Generator | None = None,
    progress: bool = True,
    callback=None,
) -> Tensor:
    """DiffusionMBIR reconstruction of a (D, H, W) volume from ``y = op(x)``.

    Args:
        op: forward operator on (D, H, W) volumes (CT per slice, MRI 2-D or 3-D).
        y: measurements.
        shape: (D, H, W).
        prior: the 2-D slice prior (:func:`train_prior`, :func:`load_prior`).
        config: an :class:`MBIRConfig` or a preset name (``"ct"``, ``"ct-4"``, ``"ct-2"``,
            ``"ct-limited"``, ``"mri"``, ``"slice"``).
        generator: the sampler's noise.
        progress: show the sampling progress bar.
        callback: passed to ``diffcore.sample``.

    Returns:
        (D, H, W) reconstruction in ``y``'s float dtype.
    """
    if isinstance(config, str) and config not in PRESETS:
        raise ValueError(f"unknown preset {config!r}; known: {', '.join(PRESETS)}")
    cfg = PRESETS[config] if isinstance(config, str) else config
    dtype = torch.float32 if not y.is_floating_point() else y.dtype
    rule = ADMMTV(
        op,
        y,
        inner=PredictorCorrector(ReverseDiffusion(), Langevin(snr=cfg.snr)),
        rho=cfg.rho,
        lam=cfg.lam,
        cg_steps=cfg.cg_steps,
        share=cfg.share,
    )
    process = prior.process
    like = torch.zeros(shape[0], 1, *shape[1:], dtype=dtype, device=y.device)
    x = process.prior_sample(like, generator=generator)
    grid = torch.linspace(process.t_max, process.t_min, cfg.steps + 1, dtype=torch.float64)
    with torch.no_grad():
        out = sample(prior, x, grid, rule, generator=generator, progress=progress,
                     callback=callback)  # fmt: skip
    return out.x[:, 0]


def tv_reconstruct(
    op: LinearOperator,
    y: Tensor,
    shape: tuple[int, ...],
    *,
    lam: float = 0.05,
    rho: float = 1.0,
    iters: int = 100,
    cg_steps: int = 10,
    axes: tuple[int, ...] = (0, 1, 2),
    x0: Tensor | None = None,
) -> Tensor:
    """TV-only baseline: ADMM for ``1/2 ||A x - y||^2 + lam sum_axes ||D_a x||_1``.

    Anisotropic TV along ``axes`` of the (D, H, W) volume, CG x-updates warm-started at the
    previous iterate (from ``x0``, default 0).
    """
    dtype = y.dtype if y.is_floating_point() else torch.float32
    x = torch.zeros(shape, dtype=dtype, device=y.device) if x0 is None else x0.clone().to(dtype)
    zs = [dz(x, a) for a in axes]
    us = [torch.zeros_like(z) for z in zs]

    def normal(v: Tensor, damping: float = _CG_DAMPING) -> Tensor:
        out = op.A_adjoint(op.A(v[0])) + damping * v[0]
        for a in axes:
            out = out + rho * dz_adjoint(dz(v[0], a), a)
        return out[None]

    aty = op.A_adjoint(y)
    for _ in range(iters):
        rhs = aty + sum(rho * dz_adjoint(z - u, a) for a, z, u in zip(axes, zs, us, strict=True))
        delta = conjugate_gradient(normal, (rhs - normal(x[None], 0.0)[0])[None], steps=cg_steps)
        x = x + delta[0]
        for i, a in enumerate(axes):
            d = dz(x, a)
            zs[i] = _soft(d + us[i], lam / rho)
            us[i] = us[i] + d - zs[i]
    return x


def with_steps(config: MBIRConfig | str, steps: int) -> MBIRConfig:
    """A preset (or config) with another number of sampler steps."""
    cfg = PRESETS[config] if isinstance(config, str) else config
    return replace(cfg, steps=steps)

r"""PDE-Refiner and the MSE baseline on one 1-D U-Net (Lippe et al. 2023, arXiv:2308.05732).

PDE-Refiner (sec. 3, Algorithm 1) predicts ``u(t)`` from ``u(t - dt)`` in K + 1 network calls.
Step k = 0 is a plain one-step prediction; steps k = 1..K add Gaussian noise of exponentially
decreasing size to the current prediction and denoise it, so each step refines ever smaller
(higher-frequency, lower-amplitude) components.

We write this as a diffusion process on the index k (`RefinerSchedule`): ``x_k = alpha_k u +
sigma_k eps`` with ``sigma_k^2 = sigma_min ** (k / K)`` and ``alpha_k = sqrt(1 - sigma_k^2)``.
(PDEArena's implementation passes ``sigma_min ** (k / K)`` to a DDPM scheduler as betas, i.e.
as noise *variances*; up to O(sigma^4) terms its cumulative products are this schedule. The
literal reading of the paper's text, std ``sigma_min ** (k / K)``, is ``noise_schedule="std"``.)
At k = 0, sigma = 1 and alpha = 0: the input is pure noise (zeros with
``first_step_input="zeros"``) and the v-target
``alpha eps - sigma u = -u``, so the v-prediction loss at k = 0 *is* the MSE loss of the
one-step prediction, and at k >= 1 (alpha = 1 - O(sigma^2)) it is the paper's noise loss
(the same device as pdearena's implementation through a DDPM scheduler). Training draws k
uniformly from {0..K} and uses `diffcore.objectives.DenoisingScoreMatching` with that process;
inference reads ``x0`` through `diffcore.predictions.Denoiser`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from diffcore.nets import ModernUNet, ModernUNetConfig
from diffcore.objectives import DenoisingScoreMatching
from diffcore.predictions import Denoiser
from diffcore.processes.gaussian import GaussianProcess

from .config import PDERefinerConfig

__all__ = ["PDERefiner", "RefinerSchedule", "SurrogateUNet", "condition_scalars"]

# Conditioning scalars (L, dx, dt) are divided by these nominal KS values (PDE-Refiner app. D:
# L = 64, N = 256, dt = 0.2) and scaled so that sinusoidal features resolve +-10% changes.
_NOMINAL = (64.0, 0.25, 0.2)
_COND_SCALE = 100.0
_ALPHA_FLOOR = 0.0  # alpha_0 = sqrt(1 - 1) is exactly 0
_STEP_RANGE = 1000.0


@dataclass(frozen=True, kw_only=True)
class RefinerSchedule(GaussianProcess):
    """PDE-Refiner's noise levels as a process on the refinement index t = k in [0, K].

    ``parameterization="variance"`` (PDEArena's code): ``sigma(k)^2 = min_noise_std ** (k / K)``;
    ``"std"``: ``sigma(k) = min_noise_std ** (k / K)``. ``alpha(k) = sqrt(1 - sigma(k)^2)``;
    sigma(0) = 1 (pure noise, the MSE step).
    """

    steps: int = 3
    min_noise_std: float = 4e-7
    parameterization: Literal["variance", "std"] = "variance"
    variance_preserving: ClassVar[bool] = True

    @property
    def t_min(self) -> float:  # noqa: D102
        return 0.0

    @property
    def t_max(self) -> float:  # noqa: D102
        return float(self.steps)

    def sigma(self, t: Tensor) -> Tensor:  # noqa: D102
        t = torch.as_tensor(t)
        power = 0.5 if self.parameterization == "variance" else 1.0
        return torch.exp(power * t / self.steps * math.log(self.min_noise_std))

    def alpha(self, t: Tensor) -> Tensor:  # noqa: D102
        s = self.sigma(t)
        return torch.sqrt((1 - s * s).clamp_min(_ALPHA_FLOOR))

    def prior_sample(self, like: Tensor, *, generator: torch.Generator | None = None) -> Tensor:  # noqa: D102
        return self.noise_like(like, generator=generator)


def condition_scalars(length: Tensor, n_points: int, dt: float | Tensor) -> Tensor:
    """The conditioning scalars (L, dx, dt), shape (B, 3), for a batch of domain lengths."""
    length = length.to(torch.float32)
    dt_t = torch.as_tensor(dt, dtype=torch.float32, device=length.device).expand_as(length)
    return torch.stack([length, length / n_points, dt_t], dim=-1)


class SurrogateUNet(nn.Module):
    """``net(x, k, *, history, params)``: the 1-D modern U-Net with scalar conditioning.

    Input channels are the noisy target x (1) and the `history` past states. The refinement
    step k and each of the three PDE scalars (L, dx, dt) get sinusoidal Fourier features and
    an MLP of their own, summed into the conditioning embedding (`diffcore.nets.ModernUNet`,
    PDEArena's scalar parameter conditioning, as PDE-Refiner app. D uses it). Convolutions
    pad periodically: the KS domain has no boundary.

    Shapes: x (B, 1, N), k (B,), history (B, H, N), params (B, 3) -> (B, 1, N).
    """

    def __init__(self, config: PDERefinerConfig, *, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.unet = ModernUNet(
            ModernUNetConfig(
                dims=1,
                in_channels=1 + config.history,
                out_channels=1,
                hidden_channels=config.hidden_channels,
                channel_mult=config.channel_mult,
                num_blocks=config.num_blocks,
                num_params=3,
                norm_groups=config.norm_groups,
                scale_shift_norm=config.scale_shift_norm,
                padding_mode="circular",
                dropout=config.dropout,
                # k in {0..K} is spread over [0, 1000], the range of DDPM's step index.
                time_scale=_STEP_RANGE / max(config.refinement_steps, 1),
            ),
            generator=generator,
        )

    def forward(self, x: Tensor, k: Tensor, *, history: Tensor, params: Tensor) -> Tensor:
        """Predict the (v / eps / MSE) output; see the class docstring for shapes."""
        if history.shape[0] != x.shape[0] or history.shape[1] != self.config.history:
            raise ValueError(
                f"`history` must have shape (B, {self.config.history}, N) with B={x.shape[0]}, "
                f"got {tuple(history.shape)}."
            )
        if params.shape != (x.shape[0], 3):
            raise ValueError(f"`params` must have shape (B, 3), got {tuple(params.shape)}.")
        scaled = (params / params.new_tensor(_NOMINAL) - 1) * _COND_SCALE
        if self.config.first_step_input == "zeros":
            k = torch.as_tensor(k, device=x.device).expand(x.shape[0])
            x = x * (k != 0).to(x.dtype)[:, None, None]
        return self.unet(torch.cat([x, history.to(x.dtype)], dim=1), k, cond=scaled)


class PDERefiner(nn.Module):
    """PDE-Refiner (``config.method == "refiner"``) or its MSE baseline (``"mse"``).

    Buffers ``u_std`` and ``diff_std`` normalise inputs and targets (set them with
    `set_normalization`: ``diff_std`` is ``config.difference_weight`` or, when that is None,
    the std of the training differences); they are saved with the weights.

    >>> from difflab.physics.pde_refiner.config import get_preset
    >>> model = PDERefiner(get_preset("quick", n_points=32))
    >>> u = torch.randn(2, 32)
    >>> model.predict_next(u[:, None], torch.tensor([64.0, 60.0]), 0.2).shape
    torch.Size([2, 32])
    """

    config_class: ClassVar[type[PDERefinerConfig]] = PDERefinerConfig
    u_std: Tensor
    diff_std: Tensor

    def __init__(self, config: PDERefinerConfig, *, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.net = SurrogateUNet(config, generator=generator)
        self.schedule = RefinerSchedule(
            steps=max(config.refinement_steps, 1),
            min_noise_std=config.min_noise_std,
            parameterization=config.noise_schedule,
        )
        self.objective = DenoisingScoreMatching(self.schedule, prediction=config.prediction)
        self.register_buffer("u_std", torch.ones(()))
        self.register_buffer("diff_std", torch.tensor(float(config.difference_weight or 1.0)))

    # ------------------------------------------------------------------ normalisation
    @torch.no_grad()
    def set_normalization(self, u: Tensor) -> None:
        """Set ``u_std`` (and ``diff_std`` unless ``difference_weight`` fixes it) from (B, T, N)."""
        if u.ndim != 3 or u.shape[1] < 2:
            raise ValueError(f"`u` must have shape (B, T >= 2, N), got {tuple(u.shape)}.")
        self.u_std.copy_(u.float().std())
        weight = self.config.difference_weight
        if weight is not None:
            self.diff_std.fill_(weight)
        else:
            self.diff_std.copy_((u[:, 1:] - u[:, :-1]).float().std())

    def _target(self, prev: Tensor, nxt: Tensor) -> Tensor:
        if self.config.target == "difference":
            return (nxt - prev) / self.diff_std
        return nxt / self.u_std

    def _untarget(self, prev: Tensor, y: Tensor) -> Tensor:
        if self.config.target == "difference":
            nxt = prev + y * self.diff_std
        else:
            nxt = y * self.u_std
        if self.config.conserve_mean:
            nxt = nxt - nxt.mean(-1, keepdim=True) + prev.mean(-1, keepdim=True)
        return nxt

    # ------------------------------------------------------------------ training
    def loss(self, batch: dict[str, Tensor], *, generator: torch.Generator | None = None) -> Tensor:
        """Training loss of a batch ``{"history": (B, H, N), "next": (B, N), "params": (B, 3)}``.

        Refiner: v- (or eps-) prediction loss at k ~ U{0..K} (k = 0 is the MSE step).
        MSE: ``||net(0, 0) - target||^2``.
        """
        history, nxt, params = batch["history"], batch["next"], batch["params"]
        prev = history[:, -1]
        target = self._target(prev, nxt)[:, None]
        hist = history / self.u_std
        if self.config.method == "mse":
            zeros = torch.zeros_like(target)
            k = torch.zeros(target.shape[0], device=target.device, dtype=target.dtype)
            out = self.net(zeros, k, history=hist, params=params)
            return ((out - target) ** 2).mean()
        b = target.shape[0]
        k = torch.randint(
            0, self.config.refinement_steps + 1, (b,), generator=generator, device=target.device
        ).to(torch.float64)
        if self.config.prediction == "v":
            return self.objective.loss(
                self.net, target, generator=generator, t=k, history=hist, params=params
            )
        # eps: the paper's form, x0 (MSE) output at k = 0 and the noise loss at k >= 1.
        eps = self.schedule.noise_like(target, generator=generator)
        x_k = self.schedule.marginal(target, k, eps)
        out = self.net(x_k, k.to(target.dtype), history=hist, params=params)
        first = (k == 0).to(target.dtype)[:, None, None]
        return ((out - (first * target + (1 - first) * eps)) ** 2).mean()

    def forward(
        self, batch: dict[str, Tensor], *, generator: torch.Generator | None = None
    ) -> Tensor:
        """The training loss (`loss`), so that data-parallel wrappers route through it."""
        return self.loss(batch, generator=generator)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict_next(
        self,
        history: Tensor,
        length: Tensor,
        dt: float,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One time step: u(t) from the past states (B, H, N) -> (B, N).

        The refiner runs steps k = 0..K (Algorithm 1): at k it noises the current estimate to
        ``alpha_k u + sigma_k eps`` (pure noise at k = 0) and reads the denoised ``x0``.
        """
        if history.ndim != 3:
            raise ValueError(f"`history` must have shape (B, H, N), got {tuple(history.shape)}.")
        params = condition_scalars(length.to(history.device), history.shape[-1], dt)
        hist = history / self.u_std
        prev = history[:, -1]
        b, n = prev.shape
        if self.config.method == "mse":
            zeros = prev.new_zeros(b, 1, n)
            y = self.net(zeros, prev.new_zeros(b), history=hist, params=params)
            return self._untarget(prev, y[:, 0])
        kind = self.config.prediction
        denoise = Denoiser(self.net, kind, self.schedule, history=hist, params=params)
        estimate = prev.new_zeros(b, 1, n)
        for k in range(self.config.refinement_steps + 1):
            kt = torch.full((b,), float(k), dtype=torch.float64, device=prev.device)
            eps = self.schedule.noise_like(estimate, generator=generator)
            x_k = self.schedule.marginal(estimate, kt, eps)
            if kind == "eps" and k == 0:  # alpha_0 = 0: the k = 0 output is x0 itself
                estimate = self.net(x_k, kt.to(x_k.dtype), history=hist, params=params)
            else:
                estimate = denoise(x_k, kt).x0
        return self._untarget(prev, estimate[:, 0])

    @torch.no_grad()
    def rollout(
        self,
        initial: Tensor,
        length: Tensor,
        dt: float,
        steps: int,
        *,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Autoregressive rollout.

        Args:
            initial: (B, H, N) the last H true states.
            length: (B,) domain lengths.
            dt: time step.
            steps: number of predicted states.
            generator: refinement noise (rollouts are deterministic given it).
            progress: progress bar.

        Returns:
            (B, steps, N) predicted states at t + dt, ..., t + steps dt.
        """
        from tqdm.auto import tqdm

        hist = initial
        out = []
        for _ in tqdm(range(steps), desc="rollout", disable=not progress, leave=False):
            nxt = self.predict_next(hist, length, dt, generator=generator)
            out.append(nxt)
            hist = torch.cat([hist[:, 1:], nxt[:, None]], dim=1)
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def ensemble_rollout(
        self,
        initial: Tensor,
        length: Tensor,
        dt: float,
        steps: int,
        members: int,
        *,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Rollouts of `members` samples of the refiner's noise (sec. 4.4, uncertainty).

        Returns:
            (members, B, steps, N); the spread between members estimates the uncertainty.
        """
        if self.config.method != "refiner":
            raise ValueError("ensembles need the refiner's stochasticity; method is 'mse'.")
        b = initial.shape[0]
        rep = self.rollout(
            initial.repeat(members, 1, 1),
            length.repeat(members),
            dt,
            steps,
            generator=generator,
            progress=progress,
        )
        return rep.reshape(members, b, steps, -1)

"""Settings of PDE-Refiner and of its MSE-trained one-step baseline."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = ["PRESETS", "PDERefinerConfig", "get_preset"]

Method = Literal["refiner", "mse"]
Target = Literal["difference", "state"]


@dataclass(frozen=True, kw_only=True)
class PDERefinerConfig:
    """PDE-Refiner (Lippe et al. 2023, arXiv:2308.05732) or the MSE baseline on one backbone.

    Attributes:
        method: ``"refiner"`` (K refinement steps, sec. 3) or ``"mse"`` (one-step MSE).
        refinement_steps: K; the refiner evaluates the network K + 1 times per time step.
        min_noise_std: sigma_min, the noise of the finest refinement step k = K.
        noise_schedule: ``"variance"``: step k has noise variance ``sigma_min ** (k / K)``, as
            PDEArena's implementation (the code behind the paper's numbers) feeds these values
            to a DDPM scheduler as betas, so the finest std is ``sqrt(4e-7) = 6.3e-4``;
            ``"std"``: noise std ``sigma_min ** (k / K)``, the literal reading of sec. 3.
        prediction: what the network outputs at noisy inputs (``"v"`` or ``"eps"``).
        first_step_input: what the network sees in place of the noisy state at k = 0, where
            alpha_0 = 0 and the input carries no information: ``"noise"`` (PDEArena's code)
            or ``"zeros"`` (the k = 0 call is then exactly the MSE baseline's call, and the
            network need not learn to suppress a white-noise input at that step only).
        target: ``"difference"`` predicts ``(u(t) - u(t - dt)) / difference_weight``,
            ``"state"`` predicts ``u(t) / u_std``.
        difference_weight: divides the difference target (PDEArena's KS config: 0.3); None
            uses the standard deviation of the training differences.
        conserve_mean: project every prediction onto the spatial mean of the previous state
            (KS with periodic boundaries conserves it exactly). Not in the paper; it removes
            a mean drift that a network with a receptive field smaller than the domain cannot
            see, and that KS turns into a Galilean shift of the whole pattern.
        n_points: spatial grid size N.
        history: number of past states the network sees.
        hidden_channels / channel_mult / num_blocks / norm_groups / scale_shift_norm /
            dropout: the 1-D modern U-Net (`diffcore.nets.ModernUNet`, periodic padding);
            ``channel_mult`` is per level, relative to ``hidden_channels``.
        lr, weight_decay, batch_size, steps, ema_decay, grad_clip, warmup: training.
    """

    method: Method = "refiner"
    refinement_steps: int = 3
    min_noise_std: float = 4e-7
    noise_schedule: Literal["variance", "std"] = "variance"
    prediction: Literal["v", "eps"] = "v"
    first_step_input: Literal["noise", "zeros"] = "noise"
    target: Target = "difference"
    difference_weight: float | None = 0.3
    conserve_mean: bool = False
    n_points: int = 256
    history: int = 1
    hidden_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4, 16)
    num_blocks: int = 2
    norm_groups: int = 1
    scale_shift_norm: bool = False
    dropout: float = 0.0
    lr: float = 1e-4
    weight_decay: float = 1e-5
    batch_size: int = 128
    steps: int = 100_000
    ema_decay: float = 0.995
    grad_clip: float | None = 1.0
    warmup: int = 500

    def __post_init__(self) -> None:
        if self.method not in ("refiner", "mse"):
            raise ValueError(f"`method` must be 'refiner' or 'mse', got {self.method!r}.")
        if self.method == "refiner" and self.refinement_steps < 1:
            raise ValueError(f"`refinement_steps` must be >= 1, got {self.refinement_steps}.")
        if not 0.0 < self.min_noise_std < 1.0:
            raise ValueError(f"`min_noise_std` must be in (0, 1), got {self.min_noise_std}.")
        if self.prediction not in ("v", "eps"):
            raise ValueError(f"`prediction` must be 'v' or 'eps', got {self.prediction!r}.")
        if self.noise_schedule not in ("variance", "std"):
            raise ValueError(
                f"`noise_schedule` must be 'variance' or 'std', got {self.noise_schedule!r}."
            )
        if self.difference_weight is not None and not self.difference_weight > 0:
            raise ValueError(f"`difference_weight` must be > 0, got {self.difference_weight}.")
        if self.first_step_input not in ("noise", "zeros"):
            raise ValueError(
                f"`first_step_input` must be 'noise' or 'zeros', got {self.first_step_input!r}."
            )
        if self.target not in ("difference", "state"):
            raise ValueError(f"`target` must be 'difference' or 'state', got {self.target!r}.")
        if self.history < 1:
            raise ValueError(f"`history` must be >= 1, got {self.history}.")
        if self.n_points % 2 ** (len(self.channel_mult) - 1):
            raise ValueError(
                f"`n_points` ({self.n_points}) must be a multiple of "
                f"{2 ** (len(self.channel_mult) - 1)} for {len(self.channel_mult)} U-Net levels."
            )


PRESETS: dict[str, PDERefinerConfig] = {
    # Paper-sized (sec. 4.1, app. D; PDEArena's KS config): modern U-Net of width 64 with
    # cumulative multipliers 1, 2, 2, 4, K = 3, sigma_min = 4e-7, Adam lr 1e-4 with cosine
    # decay, batch 128, 400 epochs of the 2048 x 139 training pairs (~890k steps), EMA, no
    # gradient clipping.
    "paper": PDERefinerConfig(steps=890_000, warmup=0, grad_clip=None),
    # Runs on 2 CPU cores in about a minute: a tiny U-Net and few steps (smoke test only).
    "quick": PDERefinerConfig(
        hidden_channels=8, channel_mult=(1, 2), num_blocks=1, batch_size=32, steps=200,
        lr=1e-3, warmup=20, ema_decay=0.99,
    ),
    # The CPU comparison run of the `slow` test: the paper's 256-point KS grid and setup, a
    # narrow modern U-Net (hidden 16, three levels, one block each), batch 32, lr 1e-3 with
    # cosine decay, no gradient clipping (as PDEArena), both non-paper options on. About 0.2 s
    # per step on one CPU core; sizes chosen for the budget, not from the paper.
    "cpu": PDERefinerConfig(
        n_points=256, hidden_channels=16, channel_mult=(1, 2, 4), num_blocks=1,
        batch_size=32, steps=6000, lr=1e-3, warmup=50, ema_decay=0.99, grad_clip=None,
        first_step_input="zeros", conserve_mean=True,
    ),
}  # fmt: skip


def get_preset(name: str, **overrides: Any) -> PDERefinerConfig:
    """A preset by name with fields overridden (``method="mse"`` for the baseline)."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown preset {name!r}{hint} known: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)

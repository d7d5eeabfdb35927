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
        min_noise_std: sigma_min; step k uses noise std ``sigma_min ** (k / K)`` (sec. 3).
        prediction: what the network outputs at noisy inputs (``"v"`` or ``"eps"``).
        target: ``"difference"`` predicts ``(u(t) - u(t - dt)) / diff_std``, ``"state"``
            predicts ``u(t) / u_std``.
        n_points: spatial grid size N.
        history: number of past states the network sees.
        model_channels / channel_mult / num_res_blocks / norm_groups / head_channels /
            dropout: the 1-D diffcore U-Net (`diffcore.nets.UNet`, ``dims=1``).
        cond_features: Fourier features per conditioning scalar (L, dx, dt).
        lr, weight_decay, batch_size, steps, ema_decay, grad_clip, warmup: training.
    """

    method: Method = "refiner"
    refinement_steps: int = 3
    min_noise_std: float = 4e-7
    prediction: Literal["v", "eps"] = "v"
    target: Target = "difference"
    n_points: int = 256
    history: int = 1
    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2, 4)
    num_res_blocks: int = 2
    norm_groups: int = 32
    head_channels: int = 64
    dropout: float = 0.0
    cond_features: int = 32
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
    # Paper-sized (sec. 4.1, app. D: modern U-Net, K=3, sigma_min=4e-7 for KS, lr 1e-4, EMA);
    # our backbone is diffcore's ADM U-Net in 1-D rather than pdearena's modern U-Net.
    "paper": PDERefinerConfig(),
    # Runs on 2 CPU cores in about a minute: a tiny U-Net and few steps (smoke test only).
    "quick": PDERefinerConfig(
        model_channels=16, channel_mult=(1, 2), num_res_blocks=1, norm_groups=8,
        head_channels=16, cond_features=8, batch_size=32, steps=200, lr=1e-3, warmup=20,
        ema_decay=0.99,
    ),
    # The CPU comparison run of the `slow` test on a 64-point KS grid (about 0.2 s per step
    # on one core); sizes chosen for a 20-minute budget on a shared 2-core machine, not from
    # the paper.
    "cpu": PDERefinerConfig(
        n_points=64, model_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
        norm_groups=8, head_channels=16, cond_features=16, batch_size=32, steps=800, lr=1e-3,
        warmup=50, ema_decay=0.99,
    ),
}  # fmt: skip


def get_preset(name: str, **overrides: Any) -> PDERefinerConfig:
    """A preset by name with fields overridden (``method="mse"`` for the baseline)."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown preset {name!r}{hint} known: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)

"""Rollout metrics for PDE surrogates (PDE-Refiner, Lippe et al. 2023, arXiv:2308.05732, sec. 4).

All functions take trajectories shaped (B, T, *S) (batch, time, space) and reduce over space
first; predictions and targets must have equal shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "RolloutMetrics",
    "correlation_time",
    "error_spectrum",
    "mse_per_step",
    "pearson_per_step",
    "relative_l2_per_step",
    "rollout_metrics",
]

_EPS = 1e-12  # guards divisions by a zero norm / zero variance
THRESHOLDS = (0.8, 0.9, 0.95)


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"`pred` and `target` must have the same shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}."
        )
    if pred.ndim < 3:
        raise ValueError(f"trajectories must have shape (B, T, *S), got {tuple(pred.shape)}.")


def pearson_per_step(pred: Tensor, target: Tensor) -> Tensor:
    """Pearson correlation over space between prediction and target at every step.

    Returns:
        (B, T) correlations in [-1, 1].
    """
    _check_pair(pred, target)
    p = pred.flatten(2) - pred.flatten(2).mean(-1, keepdim=True)
    q = target.flatten(2) - target.flatten(2).mean(-1, keepdim=True)
    return (p * q).sum(-1) / (p.norm(dim=-1) * q.norm(dim=-1)).clamp_min(_EPS)


def correlation_time(corr: Tensor, threshold: float, dt: float = 1.0) -> Tensor:
    """Time until the correlation first drops below `threshold` (PDE-Refiner's metric).

    Step ``i`` of a rollout is at time ``(i + 1) dt`` (step 0 is the first prediction). A
    trajectory that never drops counts the whole horizon ``T dt``.

    Args:
        corr: (B, T) or (T,) correlations.
        threshold: e.g. 0.8.
        dt: time between steps.

    Returns:
        (B,) or () times.
    """
    below = corr < threshold
    steps = torch.where(
        below.any(-1),
        below.float().argmax(-1),
        torch.full_like(below[..., 0], corr.shape[-1], dtype=torch.long),
    )
    return steps.to(torch.float64) * dt


def mse_per_step(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over space at every step; (B, T)."""
    _check_pair(pred, target)
    return ((pred - target) ** 2).flatten(2).mean(-1)


def relative_l2_per_step(pred: Tensor, target: Tensor) -> Tensor:
    """``||pred - target|| / ||target||`` over space at every step; (B, T)."""
    _check_pair(pred, target)
    err = (pred - target).flatten(2).norm(dim=-1)
    return err / target.flatten(2).norm(dim=-1).clamp_min(_EPS)


def error_spectrum(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Mean power spectrum of the rollout error and of the target, per step (1-D space).

    Returns:
        (error, target) power spectra, each (T, N // 2 + 1), averaged over the batch; mode m
        is ``|rfft(.)_m|^2 / N^2``.
    """
    _check_pair(pred, target)
    if pred.ndim != 3:
        raise ValueError(f"error_spectrum expects 1-D fields (B, T, N), got {tuple(pred.shape)}.")
    n = pred.shape[-1]
    err = torch.fft.rfft(pred - target, dim=-1).abs().pow(2).mean(0) / n**2
    ref = torch.fft.rfft(target, dim=-1).abs().pow(2).mean(0) / n**2
    return err, ref


@dataclass(frozen=True)
class RolloutMetrics:
    """Summary of rollouts against ground truth.

    Attributes:
        correlation: (B, T) Pearson correlation per step.
        mse: (B, T) MSE per step.
        relative_l2: (B, T) relative L2 error per step.
        times: threshold -> (B,) time until correlation < threshold.
        error_spectrum: (T, N // 2 + 1) error power per mode (1-D only, else None).
        target_spectrum: (T, N // 2 + 1) target power per mode.
    """

    correlation: Tensor
    mse: Tensor
    relative_l2: Tensor
    times: dict[float, Tensor]
    error_spectrum: Tensor | None
    target_spectrum: Tensor | None

    def summary(self) -> dict[str, float]:
        """Scalars: mean correlation times, one-step and unrolled MSE, final relative L2."""
        out = {f"corr_time_{t:g}": float(v.mean()) for t, v in self.times.items()}
        out["one_step_mse"] = float(self.mse[:, 0].mean())
        out["unrolled_mse"] = float(self.mse.mean())
        out["relative_l2_last"] = float(self.relative_l2[:, -1].mean())
        return out


def rollout_metrics(
    pred: Tensor, target: Tensor, *, dt: float = 1.0, thresholds: tuple[float, ...] = THRESHOLDS
) -> RolloutMetrics:
    """All rollout metrics at once; `pred` and `target` are (B, T, *S) with step 0 predicted."""
    pred = pred.to(torch.float64)
    target = target.to(torch.float64)
    corr = pearson_per_step(pred, target)
    spec = error_spectrum(pred, target) if pred.ndim == 3 else (None, None)
    return RolloutMetrics(
        correlation=corr,
        mse=mse_per_step(pred, target),
        relative_l2=relative_l2_per_step(pred, target),
        times={t: correlation_time(corr, t, dt) for t in thresholds},
        error_spectrum=spec[0],
        target_spectrum=spec[1],
    )

"""Image-quality metrics: PSNR and SSIM per axial/coronal/sagittal view, SAM for spectra."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["VIEWS", "ViewScores", "psnr", "sam", "ssim", "view_scores"]

VIEWS = ("axial", "coronal", "sagittal")  # slices along axis 0, 1, 2 of a (D, H, W) volume
_TINY = 1e-12  # guards log(0) and division by zero norms
_GAUSS_WIN = 11  # scikit-image's Gaussian window for sigma = 1.5: 2 int(3.5 sigma + 0.5) + 1


def psnr(x: Tensor, ref: Tensor, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB; ``data_range`` defaults to ``ref.max() - ref.min()``."""
    if x.shape != ref.shape:
        raise ValueError(f"`x` {tuple(x.shape)} and `ref` {tuple(ref.shape)} differ in shape.")
    rng = float(ref.max() - ref.min()) if data_range is None else data_range
    mse = float(((x.double() - ref.double()) ** 2).mean())
    return 10 * math.log10(rng**2 / max(mse, _TINY))


def ssim(x: Tensor, ref: Tensor, *, data_range: float | None = None) -> float:
    """Structural similarity of two 2-D images (scikit-image, Gaussian window as Wang 2004)."""
    from skimage.metrics import structural_similarity

    rng = float(ref.max() - ref.min()) if data_range is None else data_range
    a = x.detach().double().cpu().numpy()
    b = ref.detach().double().cpu().numpy()
    side = min(a.shape)
    if side >= _GAUSS_WIN:
        kw: dict = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
    elif side >= 3:  # small images: the largest odd uniform window that fits
        kw = {"win_size": side if side % 2 else side - 1}
    else:
        return float("nan")
    return float(structural_similarity(a, b, data_range=rng, **kw))


@dataclass(frozen=True)
class ViewScores:
    """Mean slice PSNR (dB) and SSIM in each view: dicts keyed by ``VIEWS``."""

    psnr: dict[str, float]
    ssim: dict[str, float]

    def __str__(self) -> str:
        return ", ".join(f"{v}: {self.psnr[v]:.2f} dB / {self.ssim[v]:.3f}" for v in VIEWS)


def view_scores(
    vol: Tensor, ref: Tensor, *, data_range: float | None = None, with_ssim: bool = True
) -> ViewScores:
    """PSNR and SSIM averaged over the slices of each view of (D, H, W) volumes.

    As in DiffusionMBIR's tables, every 2-D slice is scored against the reference slice and
    the scores are averaged per view; slices where the reference is constant are skipped.
    """
    if vol.ndim != 3 or vol.shape != ref.shape:
        raise ValueError(f"expected two (D, H, W) volumes, got {vol.shape} and {ref.shape}.")
    rng = float(ref.max() - ref.min()) if data_range is None else data_range
    ps: dict[str, float] = {}
    ss: dict[str, float] = {}
    for axis, name in enumerate(VIEWS):
        p_list, s_list = [], []
        for k in range(vol.shape[axis]):
            a, b = vol.select(axis, k), ref.select(axis, k)
            if float(b.max() - b.min()) == 0:
                continue
            p_list.append(psnr(a, b, data_range=rng))
            if with_ssim:
                s_list.append(ssim(a, b, data_range=rng))
        ps[name] = float(np.mean(p_list)) if p_list else float("nan")
        ss[name] = float(np.mean(s_list)) if s_list else float("nan")
    return ViewScores(ps, ss)


def sam(x: Tensor, ref: Tensor) -> float:
    """Mean spectral angle mapper in degrees between (C, H, W) cubes (pixels' spectra)."""
    if x.shape != ref.shape or x.ndim != 3:
        raise ValueError(f"expected two (C, H, W) cubes, got {x.shape} and {ref.shape}.")
    a, b = x.double().flatten(1), ref.double().flatten(1)
    cos = (a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0)).clamp_min(_TINY)
    return float(torch.rad2deg(torch.acos(cos.clamp(-1, 1))).mean())

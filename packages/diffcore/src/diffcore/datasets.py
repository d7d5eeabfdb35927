"""Seeded 2-D toy densities for the quickstart, tutorials and tests."""

from __future__ import annotations

import math

import torch
from torch import Tensor

TOY_DATASETS = ("moons", "checkerboard", "gaussians")


def toy_2d(name: str, n: int, *, generator: torch.Generator | None = None) -> Tensor:
    """(n, 2) float32 samples of a 2-D density, roughly standardised.

    Args:
        n: number of points.
        generator: source of randomness.
        name: ``"moons"`` (two interleaved half circles with noise 0.05), ``"checkerboard"``
            (uniform on 8 of the 16 squares of [-2, 2]^2), or ``"gaussians"`` (8 Gaussians of
            std 0.1 on a circle of radius 2, scaled by 1/1.414).
    """
    if name == "moons":
        half = n // 2
        a = torch.rand(n, generator=generator) * math.pi
        upper = torch.arange(n) < half
        x = torch.where(upper, torch.cos(a), 1 - torch.cos(a))
        y = torch.where(upper, torch.sin(a), 0.5 - torch.sin(a))
        pts = torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2, generator=generator)
        return (pts - torch.tensor([0.5, 0.25])) / torch.tensor([0.87, 0.5])
    if name == "checkerboard":
        x1 = torch.rand(n, generator=generator) * 4 - 2
        x2 = (
            torch.rand(n, generator=generator)
            + torch.randint(0, 2, (n,), generator=generator) * 2.0
        )
        x2 = x2 - 2 + (torch.floor(x1) % 2)
        return torch.stack([x1, x2], 1)
    if name == "gaussians":
        k = torch.randint(0, 8, (n,), generator=generator)
        centres = 2 * torch.stack([torch.cos(k * math.pi / 4), torch.sin(k * math.pi / 4)], 1)
        return (centres + 0.1 * torch.randn(n, 2, generator=generator)) / 1.414
    raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(TOY_DATASETS)}")

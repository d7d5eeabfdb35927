"""Dynamic thresholding of the data prediction (Imagen, Saharia et al. 2022, arXiv:2205.11487).

Sec. 2.3 of the paper: at each step, ``s`` is the ``p``-th percentile of ``|x0_hat|`` per sample;
if ``s > 1`` the prediction is clipped to ``[-s, s]`` and divided by ``s``, which keeps it inside
the data range ``[-1, 1]`` without the saturation of static clipping at large guidance weights.
The thresholded ``x0`` is returned as the prediction, so eps is re-expressed from it,
``eps = (x - alpha x0) / sigma``, for whichever step rule reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..predictions import Prediction
from ..tree import Tree, tree_map
from ._wrapper import WrapsModel

_DEFAULT_PERCENTILE = 0.995  # diffusers' `dynamic_thresholding_ratio` default for Imagen's p


@dataclass
class DynamicThresholding(WrapsModel):
    """Wrap a model so that its ``x0`` prediction is dynamically thresholded, leaf by leaf.

    Attributes:
        model: the Denoiser or guidance wrapper (e.g. a classifier-free guidance at high weight).
        percentile: p in (0, 1]: the quantile of ``|x0|`` per sample taken as threshold s.
        bound: the data range ``[-bound, bound]`` (1 for images scaled to [-1, 1]); s is never
            below it, so predictions already inside the range are left unchanged.
        max_threshold: optional cap on s (diffusers' ``sample_max_value``); None: no cap.
    """

    model: Any
    percentile: float = _DEFAULT_PERCENTILE
    bound: float = 1.0
    max_threshold: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.percentile <= 1.0:
            raise ValueError(f"`percentile` must lie in (0, 1], got {self.percentile}")
        if self.bound <= 0:
            raise ValueError(f"`bound` must be > 0, got {self.bound}")
        if self.max_threshold is not None and self.max_threshold < self.bound:
            raise ValueError(
                f"`max_threshold` ({self.max_threshold}) must be >= `bound` ({self.bound})"
            )

    def threshold(self, x0: Tree) -> Tree:
        """Threshold a data prediction: each (B, *S) leaf to ``[-bound, bound]``."""

        def leaf(v: Tensor) -> Tensor:
            flat = v.detach().abs().flatten(1)
            q = flat.to(torch.float64) if v.dtype not in (torch.float32, torch.float64) else flat
            s = torch.quantile(q, self.percentile, dim=1).to(v.dtype).clamp_min(self.bound)
            if self.max_threshold is not None:
                s = s.clamp_max(self.max_threshold)
            s = s.reshape((-1,) + (1,) * (v.ndim - 1))
            return torch.maximum(torch.minimum(v, s), -s) * (self.bound / s)

        return tree_map(leaf, x0)

    def __call__(self, x: Tree, t: Tensor | float) -> Prediction:
        """Thresholded prediction (kind ``"x0"``) at ``(x, t)``."""
        pred = self.model(x, t)
        x0 = self.threshold(pred.x0)
        kind = tree_map(lambda _: "x0", x0)
        return Prediction(raw=x0, x=x, t=pred.t, process=self.process, kind=kind)

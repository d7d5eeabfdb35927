"""Residual MLP denoiser for vector data (toy densities, low-dimensional science data).

Each block is pre-norm with the time (and condition) embedding applied as a feature-wise scale
and shift, the FiLM form of ADM's ResBlock (Dhariwal & Nichol 2021, arXiv:2105.05233, sec. 3,
"adaptive group normalization"); the last linear layer of every residual branch starts at zero,
so each block is the identity at initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .embeddings import (
    FromPreset,
    TimeEmbeddingKind,
    TimestepEmbedder,
    broadcast_time,
    embed_condition,
    reset_parameters_,
    zero_,
)

__all__ = ["MLP_PRESETS", "MLPConfig", "MLPDenoiser"]


@dataclass(frozen=True, kw_only=True)
class MLPConfig:
    """Settings of `MLPDenoiser`.

    Attributes:
        dim: data dimension D.
        hidden: width of the residual stream.
        depth: number of residual blocks.
        cond_dim: size of the optional condition vector (0: unconditional).
        time_dim: number of sinusoidal / Fourier time features.
        time_embedding: ``"sinusoidal"`` or ``"fourier"``.
        time_scale: multiplies ``t`` before the sinusoidal features.
        mlp_ratio: width of a block's inner layer relative to ``hidden``.
        dropout: dropout probability inside the residual branches.
    """

    dim: int
    hidden: int
    depth: int
    cond_dim: int = 0
    time_dim: int = 64
    time_embedding: TimeEmbeddingKind = "sinusoidal"
    time_scale: float = 1000.0
    mlp_ratio: float = 2.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("dim", "hidden", "depth", "time_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        if self.cond_dim < 0:
            raise ValueError(f"`cond_dim` must be >= 0, got {self.cond_dim}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {self.dropout}.")
        if self.mlp_ratio <= 0:
            raise ValueError(f"`mlp_ratio` must be > 0, got {self.mlp_ratio}.")


# Sizes are difflab's choices for 2-D toy densities (two moons, 8 Gaussians, checkerboard), the
# setting of e.g. Lipman et al. 2023 (arXiv:2210.02747) app. E; not taken from one paper.
MLP_PRESETS: dict[str, MLPConfig] = {
    "tiny": MLPConfig(dim=2, hidden=64, depth=2, time_dim=32),
    "small": MLPConfig(dim=2, hidden=256, depth=4),
    "base": MLPConfig(dim=2, hidden=512, depth=6, time_dim=128),
}


class _FiLMBlock(nn.Module):
    def __init__(self, hidden: int, emb_dim: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.film = nn.Linear(emb_dim, 2 * hidden)
        self.fc1 = nn.Linear(hidden, inner)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(inner, hidden)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        scale, shift = self.film(nn.functional.silu(emb)).chunk(2, dim=-1)
        u = self.norm(h) * (1 + scale) + shift
        u = self.fc2(self.drop(nn.functional.silu(self.fc1(u))))
        return h + u


class MLPDenoiser(FromPreset, nn.Module):
    """Residual MLP: (x, t[, cond]) -> same shape as x.

    Args:
        config: sizes, see `MLPConfig`.
        generator: draws the initial weights (and Fourier frequencies); global RNG when None.

    >>> net = MLPDenoiser.from_preset("tiny", generator=torch.Generator().manual_seed(0))
    >>> net(torch.zeros(3, 2), torch.rand(3)).shape
    torch.Size([3, 2])
    """

    presets: ClassVar[dict[str, Any]] = MLP_PRESETS

    config_class: ClassVar[type[MLPConfig]] = MLPConfig

    def __init__(self, config: MLPConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        emb_dim = config.hidden
        self.time_embed = TimestepEmbedder(
            emb_dim,
            freq_dim=config.time_dim,
            kind=config.time_embedding,
            time_scale=config.time_scale,
            generator=generator,
        )
        self.cond_embed = nn.Linear(config.cond_dim, emb_dim) if config.cond_dim else None
        self.inp = nn.Linear(config.dim, config.hidden)
        inner = max(1, round(config.hidden * config.mlp_ratio))
        self.blocks = nn.ModuleList(
            _FiLMBlock(config.hidden, emb_dim, inner, config.dropout) for _ in range(config.depth)
        )
        self.out_norm = nn.LayerNorm(config.hidden)
        self.out = nn.Linear(config.hidden, config.dim)
        reset_parameters_(self, generator)
        for module in self.modules():
            if isinstance(module, _FiLMBlock):
                zero_(module.fc2)

    def forward(self, x: Tensor, t: Tensor, *, cond: Tensor | None = None) -> Tensor:
        """Predict from a noisy batch.

        Args:
            x: (B, D) noisy data.
            t: (B,) noise level or time (a scalar is broadcast).
            cond: (B, cond_dim) condition vector, or None (adds nothing).

        Returns:
            (B, D) prediction, dtype of ``x`` (computed in the weights' dtype).
        """
        cfg = self.config
        if x.ndim != 2 or x.shape[1] != cfg.dim:
            raise ValueError(f"`x` must have shape (B, {cfg.dim}), got {tuple(x.shape)}.")
        t = broadcast_time(t, x.shape[0], x)
        emb = self.time_embed(t)
        extra = embed_condition(
            cond,
            label_embed=None,
            vector_embed=self.cond_embed,
            batch=x.shape[0],
            like=emb,
            owner=type(self).__name__,
        )
        if extra is not None:
            emb = emb + extra
        h = self.inp(x.to(self.inp.weight.dtype))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(nn.functional.silu(self.out_norm(h))).to(x.dtype)

"""A small reference denoiser for token sequences: embeddings, DiT blocks, logits over V.

Token embedding (one row per state, the mask included) plus a learned position embedding, a
stack of :class:`diffcore.nets.DiTBlock` (bidirectional attention with adaLN-Zero time
conditioning, Peebles & Xie 2023), a final LayerNorm and a linear map to V logits: the shape
of MDLM's DiT backbone (Sahoo et al. 2024, arXiv:2406.07524) at toy size. Inputs may be (B, L)
token ids or (B, L, K) soft one-hot states (read as ``x @ embedding``), which relaxed sampling
(:func:`diffcore.discrete.relaxed_sample`) needs. Without ``time_conditioning`` the blocks see
a learned constant instead of ``t`` (MDLM found masked diffusion needs no time input).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..nets.dit import DiTBlock
from ..nets.embeddings import (
    FromPreset,
    TimestepEmbedder,
    broadcast_time,
    reset_parameters_,
    zero_,
)

__all__ = ["TOKEN_DENOISER_PRESETS", "TokenDenoiser", "TokenDenoiserConfig"]


@dataclass(frozen=True, kw_only=True)
class TokenDenoiserConfig:
    """Settings of :class:`TokenDenoiser`.

    Attributes:
        vocab_size: V, number of output logits per position.
        num_states: K, number of input token ids (V + 1 for the masked process, V uniform);
            defaults to V + 1.
        max_length: longest sequence L.
        hidden: token width D.
        depth: number of DiT blocks.
        heads: attention heads (must divide ``hidden``).
        mlp_ratio: block MLP width relative to D.
        time_conditioning: condition the blocks on t.
        freq_dim: sinusoidal time features.
        time_scale: multiplies t in [0, 1] before the sinusoidal features.
    """

    vocab_size: int
    max_length: int
    num_states: int | None = None
    hidden: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    time_conditioning: bool = True
    freq_dim: int = 64
    time_scale: float = 1000.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_length", "hidden", "depth", "heads", "freq_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        if self.hidden % self.heads:
            raise ValueError(f"`heads` ({self.heads}) must divide `hidden` ({self.hidden}).")
        if self.num_states is not None and self.num_states < self.vocab_size:
            raise ValueError(
                f"`num_states` ({self.num_states}) must be >= vocab_size ({self.vocab_size})."
            )

    @property
    def states(self) -> int:
        """K, the number of input ids."""
        return self.vocab_size + 1 if self.num_states is None else self.num_states


# difflab's toy sizes (tests and tutorials), not a paper's.
TOKEN_DENOISER_PRESETS: dict[str, TokenDenoiserConfig] = {
    "tiny": TokenDenoiserConfig(vocab_size=4, max_length=16, hidden=32, depth=2, heads=2),
    "small": TokenDenoiserConfig(vocab_size=32, max_length=64, hidden=128, depth=4, heads=4),
}


class TokenDenoiser(FromPreset, nn.Module):
    """``(x_t, t) -> logits`` of the clean token: (B, L) ids or (B, L, K) soft -> (B, L, V).

    Args:
        config: sizes, see :class:`TokenDenoiserConfig`.
        generator: draws the initial weights; the global RNG when None.

    >>> net = TokenDenoiser.from_preset("tiny", vocab_size=3, max_length=8,
    ...                                 generator=torch.Generator().manual_seed(0))
    >>> net(torch.zeros(2, 8, dtype=torch.long), torch.rand(2)).shape
    torch.Size([2, 8, 3])
    """

    presets: ClassVar[dict[str, Any]] = TOKEN_DENOISER_PRESETS

    def __init__(
        self, config: TokenDenoiserConfig, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.config = cfg = config
        d = cfg.hidden
        self.token_embed = nn.Embedding(cfg.states, d)
        self.pos_embed = nn.Embedding(cfg.max_length, d)
        self.time_embed = (
            TimestepEmbedder(d, freq_dim=cfg.freq_dim, time_scale=cfg.time_scale)
            if cfg.time_conditioning
            else None
        )
        self.null_time = nn.Parameter(torch.zeros(d))
        self.blocks = nn.ModuleList(
            DiTBlock(d, cfg.heads, mlp_ratio=cfg.mlp_ratio) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.vocab_size)
        reset_parameters_(self, generator)
        for block in self.modules():
            if isinstance(block, DiTBlock):
                zero_(block.ada)  # adaLN-Zero: every block starts as the identity

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        """Logits of the clean token.

        Args:
            x: (B, L) token ids in [0, K), or (B, L, K) soft one-hot states.
            t: () or (B,) times in [0, 1].

        Returns:
            (B, L, V) logits, in the dtype of the weights.
        """
        cfg = self.config
        soft = x.is_floating_point()
        if x.ndim != (3 if soft else 2) or (soft and x.shape[-1] != cfg.states):
            raise ValueError(
                f"`x` must be (B, L) token ids or (B, L, K={cfg.states}) soft states, "
                f"got {x.dtype} {tuple(x.shape)}."
            )
        b, length = x.shape[:2]
        if length > cfg.max_length:
            raise ValueError(f"sequence length {length} exceeds max_length={cfg.max_length}.")
        weight = self.token_embed.weight
        if soft:
            h = x.to(weight.dtype) @ weight
        else:
            if x.numel() and bool(((x < 0) | (x >= cfg.states)).any()):
                raise ValueError(
                    f"token ids must lie in [0, {cfg.states - 1}], got values in "
                    f"[{int(x.min())}, {int(x.max())}]."
                )
            h = self.token_embed(x)
        h = h + self.pos_embed.weight[:length]
        if self.time_embed is not None:
            c = self.time_embed(broadcast_time(t, b, x))
        else:
            c = self.null_time.expand(b, -1)
        for block in self.blocks:
            h = block(h, c)
        return self.out(self.norm(h))

"""Diffusion transformers: DiT with adaLN-Zero, and the MM-DiT joint-attention block of SD3.

`DiT` follows Peebles & Xie 2023 ("Scalable Diffusion Models with Transformers",
arXiv:2212.09748): 2-D inputs are cut into p x p patches, linearly embedded, given fixed 2-D
sine-cosine position embeddings, and run through transformer blocks whose LayerNorms are
modulated by the conditioning vector ``c = embed(t) + embed(label)`` (sec. 3.2, "adaLN-Zero"):
each block regresses shift, scale and a residual *gate* per branch from ``c``, and the
regressing layers start at zero, so every block is the identity at initialisation and, with the
zero-initialised final layer, the whole network outputs exactly zero. Optional cross-attention
to a context sequence after self-attention follows PixArt-alpha (Chen et al. 2023,
arXiv:2310.00426, sec. 2.3); its output projection also starts at zero.

`MMDiT` and `MMDiTBlock` follow Esser et al. 2024 ("Scaling Rectified Flow Transformers",
arXiv:2403.03206, sec. 4 and Fig. 2): image and text tokens keep separate weights and adaLN
modulations but attend jointly over the concatenated sequence; the conditioning vector is
``embed(t) + embed(pooled text)``; the last block's text stream only supplies keys and values;
optional RMS QK-normalisation (sec. 5.3.2). Position embeddings here are the fixed 2-D
sine-cosine ones of DiT (SD3 learns them), so any patch grid works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .embeddings import (
    DEFAULT_MAX_PERIOD,
    FromPreset,
    TimeEmbeddingKind,
    TimestepEmbedder,
    _on_cpu_,
    broadcast_time,
    check_context,
    embed_condition,
    multihead_attention,
    zero_,
)

__all__ = [
    "DIT_PRESETS",
    "MMDIT_PRESETS",
    "DiT",
    "DiTBlock",
    "DiTConfig",
    "MMDiT",
    "MMDiTBlock",
    "MMDiTConfig",
]

_LN_EPS = 1e-6  # LayerNorm eps of DiT's blocks (facebookresearch/DiT models.py)
_EMBED_INIT_STD = 0.02  # DiT initialize_weights: N(0, 0.02) for label / timestep embeddings
_FREQ_DIM = 256  # DiT TimestepEmbedder frequency_embedding_size
_POS_DIM_MULTIPLE = 4  # 2-D sin-cos: half the width per axis, each half split sin/cos


@dataclass(frozen=True, kw_only=True)
class DiTConfig:
    """Settings of `DiT`.

    Attributes:
        in_channels: channels of x (4 for SD-VAE latents).
        out_channels: output channels; None for ``in_channels`` (DiT's learned variance: 2x).
        patch_size: side p of the square patches.
        hidden_size: token width; a multiple of 4 (2-D sine-cosine position embedding).
        depth: number of blocks.
        num_heads: attention heads; must divide ``hidden_size``.
        mlp_ratio: MLP width relative to ``hidden_size``.
        num_classes: class labels (0: none); label ``num_classes`` is the null label.
        cond_dim: size of a condition vector added to the time embedding (0: none).
        context_dim: feature size of a context sequence for cross-attention (0: none).
        freq_dim: sinusoidal time features.
        time_embedding: ``"sinusoidal"`` or ``"fourier"``.
        time_scale: multiplies ``t`` before the sinusoidal features.
    """

    in_channels: int
    out_channels: int | None = None
    patch_size: int
    hidden_size: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    num_classes: int = 0
    cond_dim: int = 0
    context_dim: int = 0
    freq_dim: int = _FREQ_DIM
    time_embedding: TimeEmbeddingKind = "sinusoidal"
    time_scale: float = 1000.0

    def __post_init__(self) -> None:
        _check_transformer_sizes(self)
        if self.num_classes and self.cond_dim:
            raise ValueError(
                "set at most one of `num_classes` (labels) and `cond_dim` (vectors), got "
                f"num_classes={self.num_classes}, cond_dim={self.cond_dim}."
            )

    @property
    def output_channels(self) -> int:
        """Channels of the output."""
        return self.in_channels if self.out_channels is None else self.out_channels


@dataclass(frozen=True, kw_only=True)
class MMDiTConfig:
    """Settings of `MMDiT` (SD3's MM-DiT; width 64 * depth and depth heads, sec. 5.3.1).

    Attributes:
        in_channels: channels of x (16 for the SD3 autoencoder).
        out_channels: output channels; None for ``in_channels``.
        patch_size: side p of the square patches.
        hidden_size: token width of both streams; a multiple of 4.
        depth: number of joint blocks.
        num_heads: attention heads; must divide ``hidden_size``.
        mlp_ratio: MLP width relative to ``hidden_size``.
        context_dim: feature size of the text token sequence (0: no text stream).
        pooled_dim: size of the pooled text vector passed as ``cond`` (0: none).
        qk_norm: RMS-normalise queries and keys per head (Esser et al. 2024, sec. 5.3.2).
        freq_dim: sinusoidal time features.
        time_embedding: ``"sinusoidal"`` or ``"fourier"``.
        time_scale: multiplies ``t`` before the sinusoidal features.
    """

    in_channels: int
    out_channels: int | None = None
    patch_size: int
    hidden_size: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    context_dim: int = 0
    pooled_dim: int = 0
    qk_norm: bool = False
    freq_dim: int = _FREQ_DIM
    time_embedding: TimeEmbeddingKind = "sinusoidal"
    time_scale: float = 1000.0

    def __post_init__(self) -> None:
        _check_transformer_sizes(self)

    @property
    def output_channels(self) -> int:
        """Channels of the output."""
        return self.in_channels if self.out_channels is None else self.out_channels


def _check_transformer_sizes(cfg: DiTConfig | MMDiTConfig) -> None:
    for name in ("in_channels", "patch_size", "hidden_size", "depth", "num_heads", "freq_dim"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"`{name}` must be >= 1, got {getattr(cfg, name)}.")
    if cfg.out_channels is not None and cfg.out_channels < 1:
        raise ValueError(f"`out_channels` must be >= 1 or None, got {cfg.out_channels}.")
    if cfg.hidden_size % cfg.num_heads:
        raise ValueError(
            f"`num_heads` ({cfg.num_heads}) must divide `hidden_size` ({cfg.hidden_size})."
        )
    if cfg.hidden_size % _POS_DIM_MULTIPLE:
        raise ValueError(
            f"`hidden_size` must be a multiple of {_POS_DIM_MULTIPLE} for the 2-D sine-cosine "
            f"position embedding, got {cfg.hidden_size}."
        )
    if cfg.mlp_ratio <= 0:
        raise ValueError(f"`mlp_ratio` must be > 0, got {cfg.mlp_ratio}.")
    for name in ("num_classes", "cond_dim", "context_dim", "pooled_dim"):
        if getattr(cfg, name, 0) < 0:
            raise ValueError(f"`{name}` must be >= 0, got {getattr(cfg, name)}.")


def _dit_family() -> dict[str, DiTConfig]:
    # Peebles & Xie 2023, Table 1 (depth, hidden, heads) and sec. 4 (ImageNet 256 latents:
    # 4 channels, learned variance -> 8 outputs, 1000 classes).
    sizes = {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}
    return {
        f"DiT-{name}/{p}": DiTConfig(
            in_channels=4, out_channels=8, patch_size=p, hidden_size=hidden, depth=depth,
            num_heads=heads, num_classes=1000,
        )
        for name, (depth, hidden, heads) in sizes.items()
        for p in (2, 4, 8)
    }  # fmt: skip


DIT_PRESETS: dict[str, DiTConfig] = {
    # difflab's CPU test size.
    "tiny": DiTConfig(in_channels=1, patch_size=2, hidden_size=64, depth=2, num_heads=4),
    **_dit_family(),
}

MMDIT_PRESETS: dict[str, MMDiTConfig] = {
    # difflab's CPU test size.
    "tiny": MMDiTConfig(
        in_channels=1, patch_size=2, hidden_size=64, depth=2, num_heads=4, context_dim=16,
        pooled_dim=8,
    ),
    # SD3 2B ("medium"): depth 24, width 64 * 24, 24 heads, 16 latent channels, patch 2,
    # T5-XXL/CLIP context 4096, pooled CLIP-L + CLIP-G 2048 (Esser et al. 2024, sec. 5.3).
    "sd3-medium": MMDiTConfig(
        in_channels=16, patch_size=2, hidden_size=1536, depth=24, num_heads=24,
        context_dim=4096, pooled_dim=2048,
    ),
    # The largest model of the paper, depth 38 (8B), with QK-normalisation (sec. 5.3.2).
    "sd3-d38": MMDiTConfig(
        in_channels=16, patch_size=2, hidden_size=2432, depth=38, num_heads=38,
        context_dim=4096, pooled_dim=2048, qk_norm=True,
    ),
}  # fmt: skip


def sincos_pos_embed_2d(
    h: int, w: int, dim: int, *, device: torch.device | None = None, dtype: torch.dtype
) -> Tensor:
    """Fixed 2-D sine-cosine position embedding of an h x w grid (row-major tokens).

    Half the features encode the row, half the column, each with `timestep_embedding`-style
    frequencies (Vaswani et al. 2017, sec. 3.5), as in MAE and DiT.

    Args:
        h: grid rows.
        w: grid columns.
        dim: features, a multiple of 4.
        device: where to build it.
        dtype: its dtype (computed in float64 first).

    Returns:
        (h * w, dim).
    """
    quarter = dim // _POS_DIM_MULTIPLE
    freqs = torch.exp(
        -math.log(DEFAULT_MAX_PERIOD)
        * torch.arange(quarter, device=device, dtype=torch.float64)
        / quarter
    )
    rows = torch.arange(h, device=device, dtype=torch.float64)[:, None] * freqs
    cols = torch.arange(w, device=device, dtype=torch.float64)[:, None] * freqs
    row_emb = torch.cat([rows.sin(), rows.cos()], dim=-1)[:, None, :].expand(h, w, 2 * quarter)
    col_emb = torch.cat([cols.sin(), cols.cos()], dim=-1)[None, :, :].expand(h, w, 2 * quarter)
    return torch.cat([row_emb, col_emb], dim=-1).reshape(h * w, dim).to(dtype)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: (B, L, D) * (1 + scale) + shift, with (B, D) shift and scale."""
    return x * (1 + scale[:, None]) + shift[:, None]


def _layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, elementwise_affine=False, eps=_LN_EPS)


class _Mlp(nn.Sequential):
    def __init__(self, dim: int, ratio: float) -> None:
        inner = max(1, round(dim * ratio))
        super().__init__(nn.Linear(dim, inner), nn.GELU(approximate="tanh"), nn.Linear(inner, dim))


class _PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, H/p * W/p, D) tokens plus the fixed 2-D position embedding."""

    def __init__(self, in_channels: int, dim: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        tokens = self.proj(x)  # (B, D, H/p, W/p)
        gh, gw = tokens.shape[2:]
        tokens = tokens.flatten(2).transpose(1, 2)
        pos = sincos_pos_embed_2d(gh, gw, tokens.shape[2], device=x.device, dtype=tokens.dtype)
        return tokens + pos, (gh, gw)


class _FinalLayer(nn.Module):
    """adaLN (shift, scale) then a linear map to p*p*C_out values per token, both zero-init."""

    def __init__(self, dim: int, patch: int, out_channels: int) -> None:
        super().__init__()
        self.norm = _layer_norm(dim)
        self.ada = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, patch * patch * out_channels)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.ada(nn.functional.silu(c)).chunk(2, dim=-1)
        return self.linear(_modulate(self.norm(x), shift, scale))


def _unpatchify(tokens: Tensor, grid: tuple[int, int], patch: int, channels: int) -> Tensor:
    """(B, gh*gw, p*p*C) -> (B, C, gh*p, gw*p)."""
    b = tokens.shape[0]
    gh, gw = grid
    x = tokens.reshape(b, gh, gw, patch, patch, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, gh * patch, gw * patch)


def _check_image(x: Tensor, channels: int, patch: int, owner: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(
            f"`x` must have shape (B, {channels}, H, W) for {owner}, got {tuple(x.shape)}."
        )
    if x.shape[2] % patch or x.shape[3] % patch:
        raise ValueError(
            f"H and W of `x` must be multiples of patch_size={patch}, got {tuple(x.shape[2:])}."
        )


class DiTBlock(nn.Module):
    """DiT block with adaLN-Zero conditioning (Peebles & Xie 2023, sec. 3.2, Fig. 3).

    ``x += gate_a * Attn(modulate(LN(x)))``, optional ``x += CrossAttn(LN(x), context)``, then
    ``x += gate_m * MLP(modulate(LN(x)))``; shift, scale and gate per branch come from
    ``Linear(SiLU(c))``, zero at initialisation, so the block starts as the identity.

    Args:
        dim: token width D.
        num_heads: attention heads.
        mlp_ratio: MLP width relative to D.
        context_dim: context feature size for cross-attention (0: none).
    """

    def __init__(
        self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0, context_dim: int = 0
    ) -> None:
        super().__init__()
        self.heads = num_heads
        self.norm1 = _layer_norm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.cross: nn.ModuleDict | None = None
        if context_dim:
            self.cross = nn.ModuleDict(
                {
                    "norm": _layer_norm(dim),
                    "q": nn.Linear(dim, dim),
                    "kv": nn.Linear(context_dim, 2 * dim),
                    "proj": nn.Linear(dim, dim),
                }
            )
        self.norm2 = _layer_norm(dim)
        self.mlp = _Mlp(dim, mlp_ratio)
        self.ada = nn.Linear(dim, 6 * dim)

    def forward(
        self,
        x: Tensor,
        c: Tensor,
        *,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """Apply the block.

        Args:
            x: (B, L, D) tokens.
            c: (B, D) conditioning vector.
            context: (B, Lc, context_dim) or None (cross-attention skipped).
            context_mask: (B, Lc) bool, True for valid context tokens.

        Returns:
            (B, L, D).
        """
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.ada(nn.functional.silu(c)).chunk(
            6, dim=-1
        )
        q, k, v = self.qkv(_modulate(self.norm1(x), shift_a, scale_a)).chunk(3, dim=-1)
        x = x + gate_a[:, None] * self.proj(multihead_attention(q, k, v, self.heads))
        if self.cross is not None and context is not None:
            q = self.cross["q"](self.cross["norm"](x))
            k, v = self.cross["kv"](context.to(x.dtype)).chunk(2, dim=-1)
            out = multihead_attention(q, k, v, self.heads, mask=context_mask)
            x = x + self.cross["proj"](out)
        return x + gate_m[:, None] * self.mlp(_modulate(self.norm2(x), shift_m, scale_m))


class _RMSHeadNorm(nn.Module):
    """RMSNorm over each head's channels of (B, L, D) queries or keys."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.RMSNorm(dim // heads, eps=_LN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        return self.norm(x.reshape(b, n, self.heads, d // self.heads)).reshape(b, n, d)


class _Stream(nn.Module):
    """One modality's weights inside an `MMDiTBlock`."""

    def __init__(
        self, dim: int, heads: int, mlp_ratio: float, qk_norm: bool, pre_only: bool
    ) -> None:
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = _layer_norm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm: nn.Module = _RMSHeadNorm(dim, heads) if qk_norm else nn.Identity()
        self.k_norm: nn.Module = _RMSHeadNorm(dim, heads) if qk_norm else nn.Identity()
        self.ada = nn.Linear(dim, (2 if pre_only else 6) * dim)
        if not pre_only:
            self.proj = nn.Linear(dim, dim)
            self.norm2 = _layer_norm(dim)
            self.mlp = _Mlp(dim, mlp_ratio)

    def pre(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        mods = list(self.ada(nn.functional.silu(c)).chunk(2 if self.pre_only else 6, dim=-1))
        q, k, v = self.qkv(_modulate(self.norm1(x), mods[0], mods[1])).chunk(3, dim=-1)
        return self.q_norm(q), self.k_norm(k), v, mods

    def post(self, x: Tensor, attn: Tensor, mods: list[Tensor]) -> Tensor:
        _, _, gate_a, shift_m, scale_m, gate_m = mods
        x = x + gate_a[:, None] * self.proj(attn)
        return x + gate_m[:, None] * self.mlp(_modulate(self.norm2(x), shift_m, scale_m))


class MMDiTBlock(nn.Module):
    """SD3 joint-attention block (Esser et al. 2024, arXiv:2403.03206, Fig. 2b).

    Image tokens x and context tokens c each get their own adaLN-Zero modulation, QKV, output
    projection and MLP; attention runs once over the concatenated sequence ``[c; x]``.

    Args:
        dim: token width D of both streams.
        num_heads: attention heads.
        mlp_ratio: MLP width relative to D.
        qk_norm: RMS-normalise queries and keys per head.
        context_pre_only: the context stream only supplies keys and values and is not
            updated (SD3's last block); `forward` then returns None for it.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        qk_norm: bool = False,
        context_pre_only: bool = False,
    ) -> None:
        super().__init__()
        self.heads = num_heads
        self.x_stream = _Stream(dim, num_heads, mlp_ratio, qk_norm, pre_only=False)
        self.c_stream = _Stream(dim, num_heads, mlp_ratio, qk_norm, pre_only=context_pre_only)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None,
        vec: Tensor,
        *,
        context_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Apply the block.

        Args:
            x: (B, L, D) image tokens.
            context: (B, Lc, D) context tokens, or None (image tokens attend to themselves).
            vec: (B, D) conditioning vector (time + pooled text).
            context_mask: (B, Lc) bool, True for valid context tokens.

        Returns:
            x: (B, L, D) updated image tokens.
            context: (B, Lc, D) updated context tokens, or None (no context, or pre-only).
        """
        qx, kx, vx, mods_x = self.x_stream.pre(x, vec)
        if context is None:
            attn = multihead_attention(qx, kx, vx, self.heads)
            return self.x_stream.post(x, attn, mods_x), None
        qc, kc, vc, mods_c = self.c_stream.pre(context, vec)
        n_c = context.shape[1]
        mask = None
        if context_mask is not None:
            if context_mask.shape != context.shape[:2]:
                raise ValueError(
                    f"`context_mask` must have shape (B, Lc) = {tuple(context.shape[:2])}, "
                    f"got {tuple(context_mask.shape)}."
                )
            keep_x = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
            mask = torch.cat([context_mask, keep_x], dim=1)
        attn = multihead_attention(
            torch.cat([qc, qx], dim=1),
            torch.cat([kc, kx], dim=1),
            torch.cat([vc, vx], dim=1),
            self.heads,
            mask=mask,
        )
        x = self.x_stream.post(x, attn[:, n_c:], mods_x)
        if self.c_stream.pre_only:
            return x, None
        return x, self.c_stream.post(context, attn[:, :n_c], mods_c)


def _init_transformer_(module: nn.Module, generator: torch.Generator | None) -> None:
    """DiT's initialize_weights: Xavier-uniform Linear/patch weights, zero biases."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear | nn.Conv2d):
            weight = sub.weight

            def xavier(w: Tensor) -> None:
                nn.init.xavier_uniform_(w.view(w.shape[0], -1), generator=generator)

            _on_cpu_(weight, xavier)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)


def _init_embedder_(embedder: nn.Module, generator: torch.Generator | None) -> None:
    for sub in embedder.modules():
        if isinstance(sub, nn.Linear | nn.Embedding):
            _on_cpu_(
                sub.weight,
                lambda w: nn.init.normal_(w, std=_EMBED_INIT_STD, generator=generator),
            )


class DiT(FromPreset, nn.Module):
    """Diffusion transformer with adaLN-Zero (Peebles & Xie 2023): (B, C, H, W) -> same grid.

    Args:
        config: sizes and options, see `DiTConfig`.
        generator: draws the initial weights; the global RNG when None.

    >>> net = DiT.from_preset("tiny", generator=torch.Generator().manual_seed(0))
    >>> net(torch.randn(2, 1, 8, 8), torch.rand(2)).abs().max().item()  # adaLN-Zero
    0.0
    """

    presets: ClassVar[dict[str, Any]] = DIT_PRESETS

    config_class: ClassVar[type[DiTConfig]] = DiTConfig

    def __init__(self, config: DiTConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = cfg = config
        d = cfg.hidden_size
        self.patch_embed = _PatchEmbed(cfg.in_channels, d, cfg.patch_size)
        self.time_embed = TimestepEmbedder(
            d,
            freq_dim=cfg.freq_dim,
            kind=cfg.time_embedding,
            time_scale=cfg.time_scale,
            generator=generator,
        )
        # One extra row: label `num_classes` is the null label (DiT's CFG embedding).
        self.label_embed = nn.Embedding(cfg.num_classes + 1, d) if cfg.num_classes else None
        self.cond_embed = nn.Linear(cfg.cond_dim, d) if cfg.cond_dim else None
        self.blocks = nn.ModuleList(
            DiTBlock(d, cfg.num_heads, mlp_ratio=cfg.mlp_ratio, context_dim=cfg.context_dim)
            for _ in range(cfg.depth)
        )
        self.final = _FinalLayer(d, cfg.patch_size, cfg.output_channels)

        _init_transformer_(self, generator)
        _init_embedder_(self.time_embed.mlp, generator)
        if self.label_embed is not None:
            _init_embedder_(self.label_embed, generator)
        for block in self.modules():
            if isinstance(block, DiTBlock):
                zero_(block.ada)
                if block.cross is not None:
                    zero_(block.cross["proj"])
        zero_(self.final.ada)
        zero_(self.final.linear)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        *,
        cond: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """Predict from a noisy batch.

        Args:
            x: (B, in_channels, H, W), H and W multiples of ``patch_size``.
            t: (B,) noise level or time (a scalar is broadcast).
            cond: (B,) integer labels in [0, num_classes] (``num_classes`` = null label; None
                means null for all) or (B, cond_dim) vectors (None adds nothing).
            context: (B, L, context_dim) for cross-attention; None skips it.
            context_mask: (B, L) bool, True where context tokens are valid.

        Returns:
            (B, out_channels, H, W), dtype of ``x``.
        """
        cfg = self.config
        owner = type(self).__name__
        _check_image(x, cfg.in_channels, cfg.patch_size, owner)
        batch = x.shape[0]
        check_context(context, cfg.context_dim, batch, owner)
        tokens, grid = self.patch_embed(x.to(self.patch_embed.proj.weight.dtype))
        c = self.time_embed(broadcast_time(t, batch, x))
        extra = embed_condition(
            cond,
            label_embed=self.label_embed,
            vector_embed=self.cond_embed,
            batch=batch,
            like=c,
            owner=owner,
        )
        if extra is not None:
            c = c + extra
        for block in self.blocks:
            tokens = block(tokens, c, context=context, context_mask=context_mask)
        out = self.final(tokens, c)
        return _unpatchify(out, grid, cfg.patch_size, cfg.output_channels).to(x.dtype)


class MMDiT(FromPreset, nn.Module):
    """SD3-style multimodal diffusion transformer (Esser et al. 2024, arXiv:2403.03206).

    Args:
        config: sizes and options, see `MMDiTConfig`.
        generator: draws the initial weights; the global RNG when None.

    >>> net = MMDiT.from_preset("tiny", generator=torch.Generator().manual_seed(0))
    >>> net(torch.randn(2, 1, 8, 8), torch.rand(2), context=torch.randn(2, 5, 16)).shape
    torch.Size([2, 1, 8, 8])
    """

    presets: ClassVar[dict[str, Any]] = MMDIT_PRESETS

    config_class: ClassVar[type[MMDiTConfig]] = MMDiTConfig

    def __init__(self, config: MMDiTConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = cfg = config
        d = cfg.hidden_size
        self.patch_embed = _PatchEmbed(cfg.in_channels, d, cfg.patch_size)
        self.time_embed = TimestepEmbedder(
            d,
            freq_dim=cfg.freq_dim,
            kind=cfg.time_embedding,
            time_scale=cfg.time_scale,
            generator=generator,
        )
        self.pooled_embed = (
            nn.Sequential(nn.Linear(cfg.pooled_dim, d), nn.SiLU(), nn.Linear(d, d))
            if cfg.pooled_dim
            else None
        )
        self.context_embed = nn.Linear(cfg.context_dim, d) if cfg.context_dim else None
        self.blocks = nn.ModuleList(
            MMDiTBlock(
                d,
                cfg.num_heads,
                mlp_ratio=cfg.mlp_ratio,
                qk_norm=cfg.qk_norm,
                context_pre_only=i == cfg.depth - 1,
            )
            for i in range(cfg.depth)
        )
        self.final = _FinalLayer(d, cfg.patch_size, cfg.output_channels)

        _init_transformer_(self, generator)
        _init_embedder_(self.time_embed.mlp, generator)
        if self.pooled_embed is not None:
            _init_embedder_(self.pooled_embed, generator)
        for stream in self.modules():
            if isinstance(stream, _Stream):
                zero_(stream.ada)
        zero_(self.final.ada)
        zero_(self.final.linear)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        *,
        cond: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """Predict from a noisy batch.

        Args:
            x: (B, in_channels, H, W), H and W multiples of ``patch_size``.
            t: (B,) noise level or time (a scalar is broadcast).
            cond: (B, pooled_dim) pooled text vector, or None (adds nothing).
            context: (B, L, context_dim) text tokens, or None (image tokens only).
            context_mask: (B, L) bool, True where context tokens are valid.

        Returns:
            (B, out_channels, H, W), dtype of ``x``.
        """
        cfg = self.config
        owner = type(self).__name__
        _check_image(x, cfg.in_channels, cfg.patch_size, owner)
        batch = x.shape[0]
        check_context(context, cfg.context_dim, batch, owner)
        tokens, grid = self.patch_embed(x.to(self.patch_embed.proj.weight.dtype))
        vec = self.time_embed(broadcast_time(t, batch, x))
        if cond is not None:
            if self.pooled_embed is None:
                raise ValueError(
                    f"`cond` was given but this {owner} has pooled_dim=0; build it with "
                    "pooled_dim > 0."
                )
            if cond.shape != (batch, cfg.pooled_dim):
                raise ValueError(
                    f"`cond` must have shape (B, pooled_dim) = ({batch}, {cfg.pooled_dim}), "
                    f"got {tuple(cond.shape)}."
                )
            vec = vec + self.pooled_embed(cond.to(vec.dtype))
        ctx = None
        if context is not None and self.context_embed is not None:
            ctx = self.context_embed(context.to(vec.dtype))
        for block in self.blocks:
            tokens, ctx = block(tokens, ctx, vec, context_mask=context_mask)
        out = self.final(tokens, vec)
        return _unpatchify(out, grid, cfg.patch_size, cfg.output_channels).to(x.dtype)

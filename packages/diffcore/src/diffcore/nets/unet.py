"""ADM U-Net for 1-D, 2-D and 3-D data (Dhariwal & Nichol 2021, arXiv:2105.05233).

The architecture of "Diffusion Models Beat GANs" (sec. 3): residual blocks whose GroupNorm is
modulated by the time embedding (``h = GroupNorm(h) * (1 + scale) + shift``, "adaptive group
normalization"), residual blocks for up- and downsampling (BigGAN style), multi-head
self-attention at chosen resolutions, a class-label embedding added to the time embedding, and
zero-initialised output layers in every residual branch. Extras used by later work:

* ``dims`` selects Conv1d/2d/3d; every spatial axis is halved per level.
* ``cond_dim`` adds a projected condition vector to the time embedding.
* ``context_dim`` adds cross-attention to a context sequence after each self-attention, as
  latent diffusion does (Rombach et al. 2022, arXiv:2112.10752, sec. 3.3).
* ``cache=FeatureCache(depth)`` reuses the deep features between calls (DeepCache, Ma et al.
  2024, arXiv:2312.00997, sec. 3.2): a call with an empty cache runs the whole network and
  stores the input of the decoder block at skip depth ``depth``; later calls run only the
  first ``depth`` encoder blocks and the last ``depth`` decoder blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from .embeddings import (
    FromPreset,
    TimeEmbeddingKind,
    TimestepEmbedder,
    broadcast_time,
    check_context,
    embed_condition,
    multihead_attention,
    reset_parameters_,
    zero_,
)

__all__ = ["UNET_PRESETS", "FeatureCache", "UNet", "UNetConfig"]

# ADM's time-embedding width is 4x model_channels (guided_diffusion/unet.py, time_embed_dim),
# as in DDPM (Ho et al. 2020, app. B).
_TIME_EMBED_MULT = 4
_RESAMPLE_FACTOR = 2  # each level halves every spatial axis


@dataclass(frozen=True, kw_only=True)
class UNetConfig:
    """Settings of `UNet` (names follow ADM's ``create_model`` flags).

    Attributes:
        dims: number of spatial axes: 1, 2 or 3.
        in_channels: channels of x.
        out_channels: output channels; None for ``in_channels`` (2x for a learned variance).
        model_channels: base width.
        channel_mult: width multiplier per level; the number of levels is its length.
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attention_levels: levels (0 = full resolution) with self-attention; the middle block
            always has it. ADM's ``attention_resolutions`` r at image size s is level
            log2(s / r).
        head_channels: channels per attention head; None to use ``num_heads`` heads.
        num_heads: heads when ``head_channels`` is None.
        dropout: dropout in the residual blocks.
        num_classes: class labels for label conditioning (0: none).
        cond_dim: size of a condition vector added to the time embedding (0: none).
        context_dim: feature size of a context sequence for cross-attention (0: none).
        scale_shift_norm: adaptive GroupNorm (ADM) instead of adding the embedding (DDPM).
        resblock_updown: resample inside residual blocks (ADM) instead of separate layers.
        conv_resample: use a convolution in the separate up/downsampling layers.
        norm_groups: GroupNorm groups; must divide every level's width.
        time_embedding: ``"sinusoidal"`` or ``"fourier"``.
        time_scale: multiplies ``t`` before the sinusoidal features.
    """

    dims: int = 2
    in_channels: int
    out_channels: int | None = None
    model_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attention_levels: tuple[int, ...] = ()
    head_channels: int | None = 64
    num_heads: int = 4
    dropout: float = 0.0
    num_classes: int = 0
    cond_dim: int = 0
    context_dim: int = 0
    scale_shift_norm: bool = True
    resblock_updown: bool = True
    conv_resample: bool = True
    norm_groups: int = 32
    time_embedding: TimeEmbeddingKind = "sinusoidal"
    time_scale: float = 1000.0

    def __post_init__(self) -> None:
        if self.dims not in (1, 2, 3):
            raise ValueError(f"`dims` must be 1, 2 or 3, got {self.dims}.")
        for name in ("in_channels", "model_channels", "num_res_blocks", "norm_groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        if self.out_channels is not None and self.out_channels < 1:
            raise ValueError(f"`out_channels` must be >= 1 or None, got {self.out_channels}.")
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ValueError(
                f"`channel_mult` must be a non-empty tuple of ints >= 1, got {self.channel_mult}."
            )
        levels = len(self.channel_mult)
        bad = [lvl for lvl in self.attention_levels if not 0 <= lvl < levels]
        if bad:
            raise ValueError(
                f"`attention_levels` must lie in [0, {levels - 1}] (one per channel_mult entry), "
                f"got {self.attention_levels}."
            )
        for name in ("num_classes", "cond_dim", "context_dim"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}.")
        if self.num_classes and self.cond_dim:
            raise ValueError(
                "set at most one of `num_classes` (labels) and `cond_dim` (vectors), got "
                f"num_classes={self.num_classes}, cond_dim={self.cond_dim}."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {self.dropout}.")
        for mult in self.channel_mult:
            width = mult * self.model_channels
            if width % self.norm_groups:
                raise ValueError(
                    f"`norm_groups` ({self.norm_groups}) must divide every level width "
                    f"model_channels * channel_mult = {width}."
                )
        for lvl in {*self.attention_levels, levels - 1}:
            self.heads_at(self.channel_mult[lvl] * self.model_channels)

    @property
    def output_channels(self) -> int:
        """Channels of the output."""
        return self.in_channels if self.out_channels is None else self.out_channels

    def heads_at(self, width: int) -> int:
        """Number of attention heads at a level of `width` channels."""
        if self.head_channels is not None:
            if self.head_channels < 1 or width % self.head_channels:
                raise ValueError(
                    f"`head_channels` ({self.head_channels}) must divide the width {width} of "
                    "every attention level."
                )
            return width // self.head_channels
        if self.num_heads < 1 or width % self.num_heads:
            raise ValueError(
                f"`num_heads` ({self.num_heads}) must divide the width {width} of every "
                "attention level."
            )
        return self.num_heads


UNET_PRESETS: dict[str, UNetConfig] = {
    # difflab's CPU test size: two levels, attention at the lower one.
    "tiny": UNetConfig(
        in_channels=1, model_channels=16, channel_mult=(1, 2), num_res_blocks=1,
        attention_levels=(1,), head_channels=16, norm_groups=8,
    ),
    # difflab's small size for 32x32 experiments; not from a paper.
    "small": UNetConfig(
        in_channels=3, model_channels=64, channel_mult=(1, 2, 2), num_res_blocks=2,
        attention_levels=(2,), head_channels=32,
    ),
    # DDPM CIFAR-10 (Ho et al. 2020, app. B): ch 128, mult (1,2,2,2), 2 blocks, attention at
    # 16x16, dropout 0.1, additive time embedding, single-head attention.
    "ddpm-cifar10": UNetConfig(
        in_channels=3, model_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2,
        attention_levels=(1,), head_channels=None, num_heads=1, dropout=0.1,
        scale_shift_norm=False, resblock_updown=False,
    ),
    # ADM ImageNet 64x64 (Dhariwal & Nichol 2021, Table 15; guided-diffusion README flags):
    # num_channels 192, num_res_blocks 3, attention_resolutions 32,16,8, num_head_channels 64,
    # dropout 0.1, class_cond, learn_sigma (6 output channels), channel_mult (1,2,3,4).
    "adm-imagenet64": UNetConfig(
        in_channels=3, out_channels=6, model_channels=192, channel_mult=(1, 2, 3, 4),
        num_res_blocks=3, attention_levels=(1, 2, 3), head_channels=64, dropout=0.1,
        num_classes=1000,
    ),
    # ADM ImageNet 256x256 conditional (same sources): num_channels 256, num_res_blocks 2,
    # attention_resolutions 32,16,8, num_head_channels 64, channel_mult (1,1,2,2,4,4).
    "adm-imagenet256": UNetConfig(
        in_channels=3, out_channels=6, model_channels=256, channel_mult=(1, 1, 2, 2, 4, 4),
        num_res_blocks=2, attention_levels=(3, 4, 5), head_channels=64, num_classes=1000,
    ),
}  # fmt: skip


@dataclass(eq=False)
class FeatureCache:
    """Deep U-Net features kept between calls (DeepCache, Ma et al. 2024, arXiv:2312.00997).

    This is per-run state that the caller owns and passes in explicitly; the network never
    keeps it. Pass an empty cache to run the full network and fill it; pass a filled cache to
    reuse its features and run only the shallow blocks; `clear` it to force a full pass (the
    refresh schedule, e.g. every N sampler steps, is the caller's choice).

    Attributes:
        depth: skip depth in [1, UNet.num_skips]: the first ``depth`` encoder blocks and the
            last ``depth`` decoder blocks run on every call.
        features: (B, C, *S) cached input of the decoder block at that depth, or None.
    """

    depth: int
    features: Tensor | None = None

    @property
    def filled(self) -> bool:
        """Whether features are stored."""
        return self.features is not None

    def clear(self) -> None:
        """Drop the stored features."""
        self.features = None


def _conv(
    dims: int, cin: int, cout: int, kernel: int, stride: int = 1
) -> nn.Conv1d | nn.Conv2d | nn.Conv3d:
    pad = kernel // 2
    if dims == 1:
        return nn.Conv1d(cin, cout, kernel, stride=stride, padding=pad)
    if dims == 2:
        return nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad)
    return nn.Conv3d(cin, cout, kernel, stride=stride, padding=pad)


class _Resample(nn.Module):
    """Halve (``down``) or double (``up``) every spatial axis, with an optional 3x3 conv."""

    def __init__(
        self, channels: int, dims: int, mode: Literal["up", "down"], use_conv: bool
    ) -> None:
        super().__init__()
        self.mode = mode
        self.dims = dims
        self.conv: nn.Module | None = None
        if use_conv:
            stride = _RESAMPLE_FACTOR if mode == "down" else 1
            self.conv = _conv(dims, channels, channels, 3, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "up":
            x = nn.functional.interpolate(x, scale_factor=_RESAMPLE_FACTOR, mode="nearest")
            return x if self.conv is None else self.conv(x)
        if self.conv is not None:
            return self.conv(x)
        pool = {1: nn.functional.avg_pool1d, 2: nn.functional.avg_pool2d,
                3: nn.functional.avg_pool3d}[self.dims]  # fmt: skip
        return pool(x, _RESAMPLE_FACTOR)


class _ResBlock(nn.Module):
    """ADM ResBlock: GroupNorm-SiLU-conv, embedding as scale/shift (or added), zero out-conv."""

    def __init__(
        self,
        cin: int,
        cout: int,
        emb_dim: int,
        cfg: UNetConfig,
        updown: Literal["up", "down"] | None = None,
    ) -> None:
        super().__init__()
        self.scale_shift = cfg.scale_shift_norm
        self.in_norm = nn.GroupNorm(cfg.norm_groups, cin)
        self.resample = (
            _Resample(cin, cfg.dims, updown, use_conv=False) if updown is not None else None
        )
        self.in_conv = _conv(cfg.dims, cin, cout, 3)
        self.emb = nn.Linear(emb_dim, 2 * cout if self.scale_shift else cout)
        self.out_norm = nn.GroupNorm(cfg.norm_groups, cout)
        self.drop = nn.Dropout(cfg.dropout)
        self.out_conv = _conv(cfg.dims, cout, cout, 3)
        self.skip = nn.Identity() if cin == cout else _conv(cfg.dims, cin, cout, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = nn.functional.silu(self.in_norm(x))
        if self.resample is not None:
            h, x = self.resample(h), self.resample(x)
        h = self.in_conv(h)
        e = self.emb(nn.functional.silu(emb))
        e = e.reshape(*e.shape, *([1] * (h.ndim - 2)))
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_norm(h) * (1 + scale) + shift
        else:
            h = self.out_norm(h + e)
        h = self.out_conv(self.drop(nn.functional.silu(h)))
        return self.skip(x) + h


class _AttentionBlock(nn.Module):
    """Self-attention over all positions, then optional cross-attention to a context."""

    def __init__(self, channels: int, cfg: UNetConfig) -> None:
        super().__init__()
        self.heads = cfg.heads_at(channels)
        self.norm = nn.GroupNorm(cfg.norm_groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.cross: nn.ModuleDict | None = None
        if cfg.context_dim:
            self.cross = nn.ModuleDict(
                {
                    "norm": nn.GroupNorm(cfg.norm_groups, channels),
                    "q": nn.Linear(channels, channels),
                    "kv": nn.Linear(cfg.context_dim, 2 * channels),
                    "proj": nn.Linear(channels, channels),
                }
            )

    def forward(
        self, x: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None
    ) -> Tensor:
        b, c = x.shape[:2]
        tokens = self.norm(x).reshape(b, c, -1).transpose(1, 2)  # (B, L, C)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        out = self.proj(multihead_attention(q, k, v, self.heads))
        x = x + out.transpose(1, 2).reshape(x.shape)
        if self.cross is not None and context is not None:
            tokens = self.cross["norm"](x).reshape(b, c, -1).transpose(1, 2)
            k, v = self.cross["kv"](context.to(tokens.dtype)).chunk(2, dim=-1)
            out = multihead_attention(self.cross["q"](tokens), k, v, self.heads, mask=context_mask)
            x = x + self.cross["proj"](out).transpose(1, 2).reshape(x.shape)
        return x


class _Stage(nn.ModuleList):
    """A sequence of layers; hands each the inputs it takes."""

    def forward(
        self, h: Tensor, emb: Tensor, context: Tensor | None, context_mask: Tensor | None
    ) -> Tensor:
        for layer in self:
            if isinstance(layer, _ResBlock):
                h = layer(h, emb)
            elif isinstance(layer, _AttentionBlock):
                h = layer(h, context, context_mask)
            else:
                h = layer(h)
        return h


class UNet(FromPreset, nn.Module):
    """ADM U-Net: (x, t[, cond, context]) -> prediction of shape (B, out_channels, *S).

    Args:
        config: sizes and options, see `UNetConfig`.
        generator: draws the initial weights; the global RNG when None.

    >>> net = UNet.from_preset("tiny", dims=1, generator=torch.Generator().manual_seed(0))
    >>> net(torch.zeros(2, 1, 16), torch.rand(2)).shape
    torch.Size([2, 1, 16])
    """

    presets: ClassVar[dict[str, Any]] = UNET_PRESETS

    config_class: ClassVar[type[UNetConfig]] = UNetConfig

    def __init__(self, config: UNetConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = cfg = config
        mc = cfg.model_channels
        emb_dim = _TIME_EMBED_MULT * mc
        self.time_embed = TimestepEmbedder(
            emb_dim,
            freq_dim=mc,
            kind=cfg.time_embedding,
            time_scale=cfg.time_scale,
            generator=generator,
        )
        # One extra row: label `num_classes` is the null label for classifier-free guidance.
        self.label_embed = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes else None
        self.cond_embed = nn.Linear(cfg.cond_dim, emb_dim) if cfg.cond_dim else None

        ch = cfg.channel_mult[0] * mc
        self.input_blocks = nn.ModuleList([_Stage([_conv(cfg.dims, cfg.in_channels, ch, 3)])])
        skip_channels = [ch]
        last = len(cfg.channel_mult) - 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [_ResBlock(ch, mult * mc, emb_dim, cfg)]
                ch = mult * mc
                if level in cfg.attention_levels:
                    layers.append(_AttentionBlock(ch, cfg))
                self.input_blocks.append(_Stage(layers))
                skip_channels.append(ch)
            if level != last:
                down: nn.Module = (
                    _ResBlock(ch, ch, emb_dim, cfg, updown="down")
                    if cfg.resblock_updown
                    else _Resample(ch, cfg.dims, "down", cfg.conv_resample)
                )
                self.input_blocks.append(_Stage([down]))
                skip_channels.append(ch)

        self.middle_block = _Stage(
            [
                _ResBlock(ch, ch, emb_dim, cfg),
                _AttentionBlock(ch, cfg),
                _ResBlock(ch, ch, emb_dim, cfg),
            ]
        )

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [_ResBlock(ch + skip_channels.pop(), mult * mc, emb_dim, cfg)]
                ch = mult * mc
                if level in cfg.attention_levels:
                    layers.append(_AttentionBlock(ch, cfg))
                if level and i == cfg.num_res_blocks:
                    layers.append(
                        _ResBlock(ch, ch, emb_dim, cfg, updown="up")
                        if cfg.resblock_updown
                        else _Resample(ch, cfg.dims, "up", cfg.conv_resample)
                    )
                self.output_blocks.append(_Stage(layers))

        self.out_norm = nn.GroupNorm(cfg.norm_groups, ch)
        self.out_conv = _conv(cfg.dims, ch, cfg.output_channels, 3)

        reset_parameters_(self, generator)
        # ADM zero-initialises the last layer of every residual branch and the output conv.
        for module in self.modules():
            if isinstance(module, _ResBlock):
                zero_(module.out_conv)
            elif isinstance(module, _AttentionBlock):
                zero_(module.proj)
                if module.cross is not None:
                    zero_(module.cross["proj"])
        zero_(self.out_conv)

    @property
    def num_skips(self) -> int:
        """Number of skip connections: the largest valid `FeatureCache.depth`."""
        return len(self.input_blocks)

    @property
    def size_multiple(self) -> int:
        """Every spatial size of x must be a multiple of this."""
        return int(_RESAMPLE_FACTOR ** (len(self.config.channel_mult) - 1))

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        *,
        cond: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        cache: FeatureCache | None = None,
    ) -> Tensor:
        """Predict from a noisy batch.

        Args:
            x: (B, in_channels, *S) noisy data, ``len(S) == dims``, each size a multiple of
                `size_multiple`.
            t: (B,) noise level or time (a scalar is broadcast).
            cond: (B,) integer labels in [0, num_classes] (``num_classes`` = null label; None
                means null for all) or (B, cond_dim) vectors (None adds nothing).
            context: (B, L, context_dim) sequence for cross-attention; None skips it.
            context_mask: (B, L) bool, True where context tokens are valid.
            cache: DeepCache features; see `FeatureCache`.

        Returns:
            (B, out_channels, *S), dtype of ``x`` (computed in the weights' dtype).
        """
        cfg = self.config
        self._check_input(x)
        batch = x.shape[0]
        check_context(context, cfg.context_dim, batch, type(self).__name__)
        dtype = self.out_conv.weight.dtype
        emb = self.time_embed(broadcast_time(t, batch, x))
        extra = embed_condition(
            cond,
            label_embed=self.label_embed,
            vector_embed=self.cond_embed,
            batch=batch,
            like=emb,
            owner=type(self).__name__,
        )
        if extra is not None:
            emb = emb + extra

        n = self.num_skips
        if cache is not None and not 1 <= cache.depth <= n:
            raise ValueError(f"`cache.depth` must be in [1, {n}], got {cache.depth}.")
        cached = cache.features if cache is not None else None
        depth = cache.depth if cache is not None and cached is not None else n
        h = x.to(dtype)
        skips = []
        for block in self.input_blocks[:depth]:
            h = block(h, emb, context, context_mask)
            skips.append(h)

        if cached is not None:
            if cached.shape[0] != batch or cached.shape[2:] != skips[-1].shape[2:]:
                raise ValueError(
                    f"`cache.features` has shape {tuple(cached.shape)}, which does not fit this "
                    f"input (batch {batch}, spatial {tuple(skips[-1].shape[2:])} at depth "
                    f"{depth}); clear the cache when the batch or the input size changes."
                )
            h = cached
            first = n - depth
        else:
            h = self.middle_block(h, emb, context, context_mask)
            first = 0
        for j in range(first, n):
            if cache is not None and cache.features is None and j == n - cache.depth:
                cache.features = h
            h = self.output_blocks[j](
                torch.cat([h, skips.pop()], dim=1), emb, context, context_mask
            )
        out = self.out_conv(nn.functional.silu(self.out_norm(h)))
        return out.to(x.dtype)

    def _check_input(self, x: Tensor) -> None:
        cfg = self.config
        if x.ndim != cfg.dims + 2 or x.shape[1] != cfg.in_channels:
            spatial = ", ".join(f"S{i}" for i in range(cfg.dims))
            raise ValueError(
                f"`x` must have shape (B, {cfg.in_channels}, {spatial}) for dims={cfg.dims}, "
                f"got {tuple(x.shape)}."
            )
        m = self.size_multiple
        if any(s % m for s in x.shape[2:]):
            sizes = tuple(x.shape[2:])
            nxt = tuple(math.ceil(s / m) * m for s in sizes)
            raise ValueError(
                f"spatial sizes of `x` must be multiples of {m} ({len(cfg.channel_mult)} "
                f"levels), got {sizes}; pad to {nxt}."
            )

r"""Modern U-Net for PDE surrogates, 1-D and 2-D (Gupta & Brandstetter 2022, arXiv:2209.15616).

The "U-Net_mod" of PDEArena, the backbone PDE-Refiner (Lippe et al. 2023, arXiv:2308.05732,
app. D) uses on Kuramoto-Sivashinsky: wide residual blocks (pre-activation GroupNorm-GELU-conv,
twice, with a shortcut), no attention by default, strided-conv downsampling, and a conditioning
embedding that is the *sum* of one Fourier-feature MLP for the diffusion/refinement step and
one per scalar PDE parameter (PDEArena's ``param_conditioning="scalar_P"``). The embedding is
added to the hidden features after the first convolution of every block, or modulates the
second GroupNorm (``scale_shift_norm``, AdaGN).

Two choices differ from PDEArena's code and are ours:

* ``padding_mode="circular"`` (the default) pads every convolution periodically, so a periodic
  domain has no boundary; upsampling is nearest-neighbour followed by a (periodic) convolution
  rather than a transposed convolution, which has no periodic form in PyTorch.
* ``channel_mult`` gives each level's width as a multiple of ``hidden_channels`` (as in ADM);
  PDEArena multiplies cumulatively, so its ``(1, 2, 2, 4)`` is ``(1, 2, 4, 16)`` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from .embeddings import FromPreset, broadcast_time, reset_parameters_, timestep_embedding, zero_

__all__ = ["MODERN_UNET_PRESETS", "ModernUNet", "ModernUNetConfig"]

PaddingMode = Literal["circular", "zeros", "reflect", "replicate"]

_EMBED_MULT = 4  # embedding width = 4 * hidden_channels (PDEArena, as DDPM)
_OUTPUT_NORM_GROUPS = 8  # groups of the final GroupNorm before the output convolution


@dataclass(frozen=True, kw_only=True)
class ModernUNetConfig:
    """Sizes and options of `ModernUNet`.

    Attributes:
        dims: spatial dimensions, 1 or 2; every spatial axis is halved per level.
        in_channels: input channels (noisy state and conditioning fields stacked).
        out_channels: output channels; ``in_channels`` when None.
        hidden_channels: width of the first level (PDEArena / PDE-Refiner KS: 64).
        channel_mult: width of each level as a multiple of ``hidden_channels``.
        num_blocks: residual blocks per level on the way down (one more on the way up).
        num_params: scalar PDE parameters, each embedded by its own Fourier-feature MLP.
        norm: GroupNorm in the residual blocks (PDEArena ``norm=True``).
        norm_groups: groups of the block GroupNorms (PDEArena: 1, i.e. layer norm over C x N).
        scale_shift_norm: the embedding modulates the second GroupNorm (AdaGN) instead of
            being added after the first convolution.
        padding_mode: padding of every convolution; ``"circular"`` for periodic domains.
        time_scale: multiplies ``t`` before its sinusoidal features.
        dropout: dropout before the second convolution of each block.
    """

    dims: int = 1
    in_channels: int
    out_channels: int | None = None
    hidden_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4, 16)
    num_blocks: int = 2
    num_params: int = 0
    norm: bool = True
    norm_groups: int = 1
    scale_shift_norm: bool = False
    padding_mode: PaddingMode = "circular"
    time_scale: float = 1.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.dims not in (1, 2):
            raise ValueError(f"`dims` must be 1 or 2, got {self.dims}.")
        for name in ("in_channels", "hidden_channels", "num_blocks", "norm_groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        if self.out_channels is not None and self.out_channels < 1:
            raise ValueError(f"`out_channels` must be >= 1 or None, got {self.out_channels}.")
        if self.num_params < 0:
            raise ValueError(f"`num_params` must be >= 0, got {self.num_params}.")
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ValueError(
                f"`channel_mult` must be a non-empty tuple of ints >= 1, got {self.channel_mult}."
            )
        if self.padding_mode not in ("circular", "zeros", "reflect", "replicate"):
            raise ValueError(
                "`padding_mode` must be 'circular', 'zeros', 'reflect' or 'replicate', "
                f"got {self.padding_mode!r}."
            )
        widths = [self.hidden_channels * m for m in self.channel_mult]
        if self.norm and any(width % self.norm_groups for width in widths):
            raise ValueError(
                f"`norm_groups` ({self.norm_groups}) must divide every level width {widths}."
            )
        if self.norm and self.hidden_channels % _OUTPUT_NORM_GROUPS:
            raise ValueError(
                f"`hidden_channels` must be a multiple of {_OUTPUT_NORM_GROUPS} (the output "
                f"GroupNorm) when `norm` is set, got {self.hidden_channels}."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {self.dropout}.")

    @property
    def resolution_divisor(self) -> int:
        """Every spatial size must be a multiple of this (2 ** (levels - 1))."""
        return 2 ** (len(self.channel_mult) - 1)


MODERN_UNET_PRESETS: dict[str, ModernUNetConfig] = {
    # PDEArena's "Unetmod-1d-64" as PDE-Refiner trains it on KS (one input state, the noisy
    # target, two PDE scalars); PDEArena's cumulative (1, 2, 2, 4) is (1, 2, 4, 16) here.
    "pdearena-1d-64": ModernUNetConfig(dims=1, in_channels=2, out_channels=1, num_params=2),
    "pdearena-2d-64": ModernUNetConfig(
        dims=2, in_channels=2, out_channels=1, channel_mult=(1, 2, 4, 8)
    ),
    "tiny": ModernUNetConfig(
        dims=1, in_channels=1, hidden_channels=8, channel_mult=(1, 2), num_blocks=1
    ),
}


def _conv(
    cfg: ModernUNetConfig, cin: int, cout: int, kernel: int, stride: int = 1
) -> nn.Conv1d | nn.Conv2d:
    conv = nn.Conv1d if cfg.dims == 1 else nn.Conv2d
    pad = kernel // 2
    return conv(cin, cout, kernel, stride=stride, padding=pad, padding_mode=cfg.padding_mode)


def _norm(cfg: ModernUNetConfig, channels: int) -> nn.Module:
    return nn.GroupNorm(cfg.norm_groups, channels) if cfg.norm else nn.Identity()


class _ResidualBlock(nn.Module):
    """Wide residual block: ``x + conv2(act(norm2(conv1(act(norm1(x))) + emb)))``."""

    def __init__(self, cin: int, cout: int, emb_dim: int, cfg: ModernUNetConfig) -> None:
        super().__init__()
        self.scale_shift = cfg.scale_shift_norm
        self.norm1 = _norm(cfg, cin)
        self.conv1 = _conv(cfg, cin, cout, 3)
        self.emb = nn.Linear(emb_dim, 2 * cout if self.scale_shift else cout)
        self.norm2 = _norm(cfg, cout)
        self.dropout = nn.Dropout(cfg.dropout)
        self.conv2 = _conv(cfg, cout, cout, 3)
        self.shortcut = _conv(cfg, cin, cout, 1) if cin != cout else nn.Identity()
        self.act = nn.GELU()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        e = self.emb(emb)
        e = e.reshape(*e.shape, *([1] * (h.ndim - 2)))
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(self.act(h)))
        return h + self.shortcut(x)


class _Upsample(nn.Module):
    def __init__(self, channels: int, cfg: ModernUNetConfig) -> None:
        super().__init__()
        self.conv = _conv(cfg, channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))


class ModernUNet(FromPreset, nn.Module):
    """Modern U-Net: ``(x, t[, cond])`` -> (B, out_channels, *S), S divisible by 2^(levels-1).

    ``cond`` holds the scalar PDE parameters, (B, num_params); each gets sinusoidal features
    and its own MLP, and the results are added to the embedding of ``t``. Scale the scalars so
    that the changes that matter span about one unit or more (the features' fastest
    wavelength is 2 pi).

    Args:
        config: sizes and options, see `ModernUNetConfig`.
        generator: draws the initial weights; the global RNG when None.

    >>> net = ModernUNet.from_preset("tiny", generator=torch.Generator().manual_seed(0))
    >>> net(torch.zeros(2, 1, 16), torch.rand(2)).shape
    torch.Size([2, 1, 16])
    """

    presets: ClassVar[dict[str, Any]] = MODERN_UNET_PRESETS
    config_class: ClassVar[type[ModernUNetConfig]] = ModernUNetConfig

    def __init__(
        self, config: ModernUNetConfig, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.config = cfg = config
        hc = cfg.hidden_channels
        emb_dim = _EMBED_MULT * hc
        self.time_embed = self._embedder(hc, emb_dim)
        self.param_embed = nn.ModuleList(self._embedder(hc, emb_dim) for _ in range(cfg.num_params))
        self.input_proj = _conv(cfg, cfg.in_channels, hc, 3)

        widths = [hc * m for m in cfg.channel_mult]
        last = len(widths) - 1
        self.down = nn.ModuleList()
        skips, ch = [hc], hc
        for level, width in enumerate(widths):
            for _ in range(cfg.num_blocks):
                self.down.append(_ResidualBlock(ch, width, emb_dim, cfg))
                ch = width
                skips.append(ch)
            if level != last:
                self.down.append(_conv(cfg, ch, ch, 3, stride=2))
                skips.append(ch)

        self.middle = nn.ModuleList(
            [_ResidualBlock(ch, ch, emb_dim, cfg), _ResidualBlock(ch, ch, emb_dim, cfg)]
        )

        self.up = nn.ModuleList()
        for level in reversed(range(len(widths))):
            for _ in range(cfg.num_blocks):
                self.up.append(_ResidualBlock(ch + skips.pop(), widths[level], emb_dim, cfg))
                ch = widths[level]
            target = widths[level - 1] if level else hc
            self.up.append(_ResidualBlock(ch + skips.pop(), target, emb_dim, cfg))
            ch = target
            if level:
                self.up.append(_Upsample(ch, cfg))

        self.out_norm = nn.GroupNorm(_OUTPUT_NORM_GROUPS, hc) if cfg.norm else nn.Identity()
        self.out = _conv(cfg, hc, cfg.out_channels or cfg.in_channels, 3)
        reset_parameters_(self, generator)
        # Every residual branch and the output start at zero: the network starts as the
        # identity on its skip path and predicts 0.
        for module in self.modules():
            if isinstance(module, _ResidualBlock):
                zero_(module.conv2)
        zero_(self.out)

    @staticmethod
    def _embedder(features: int, emb_dim: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(features, emb_dim), nn.GELU(), nn.Linear(emb_dim, emb_dim))

    def embed(self, t: Tensor | float, cond: Tensor | None, batch: int, like: Tensor) -> Tensor:
        """The conditioning embedding (B, 4 * hidden_channels) of step ``t`` and scalars."""
        cfg = self.config
        dtype = self.input_proj.weight.dtype
        t = broadcast_time(t, batch, like)
        feats = timestep_embedding(t.float() * cfg.time_scale, cfg.hidden_channels)
        emb = self.time_embed(feats.to(dtype))
        if cfg.num_params:
            if cond is None or cond.shape != (batch, cfg.num_params):
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(
                    f"`cond` must hold the {cfg.num_params} PDE scalars with shape "
                    f"(B, {cfg.num_params}) = ({batch}, {cfg.num_params}), got {got}."
                )
            if not torch.isfinite(cond).all():
                raise ValueError("`cond` (the PDE scalars) contains NaN or inf.")
            for i, mlp in enumerate(self.param_embed):
                emb = emb + mlp(
                    timestep_embedding(cond[:, i].float(), cfg.hidden_channels).to(dtype)
                )
        elif cond is not None:
            raise ValueError("`cond` was given but the network has `num_params=0`.")
        return emb

    def forward(self, x: Tensor, t: Tensor | float, *, cond: Tensor | None = None) -> Tensor:
        """Apply the network.

        Args:
            x: (B, in_channels, *S) with ``len(S) == dims``, each size a multiple of
                ``2 ** (levels - 1)``.
            t: (B,) or scalar diffusion / refinement step.
            cond: (B, num_params) scalar PDE parameters, or None when ``num_params == 0``.

        Returns:
            (B, out_channels, *S).
        """
        cfg = self.config
        if x.ndim != cfg.dims + 2 or x.shape[1] != cfg.in_channels:
            raise ValueError(
                f"`x` must have shape (B, {cfg.in_channels}, *S) with {cfg.dims} spatial axes, "
                f"got {tuple(x.shape)}."
            )
        bad = [s for s in x.shape[2:] if s % cfg.resolution_divisor]
        if bad:
            raise ValueError(
                f"spatial sizes {tuple(x.shape[2:])} must be multiples of "
                f"{cfg.resolution_divisor} for {len(cfg.channel_mult)} levels."
            )
        emb = self.embed(t, cond, x.shape[0], x)
        h = self.input_proj(x.to(self.input_proj.weight.dtype))
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, _ResidualBlock) else layer(h)
            skips.append(h)
        for block in self.middle:
            h = block(h, emb)
        for layer in self.up:
            if isinstance(layer, _ResidualBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = layer(h)
        return self.out(nn.functional.gelu(self.out_norm(h)))

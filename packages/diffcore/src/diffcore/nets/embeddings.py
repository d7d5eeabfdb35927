"""Time embeddings shared by the reference networks, and the small helpers they all use.

Two ways to turn a noise level or time ``t`` into a feature vector:

* sinusoidal features (Vaswani et al. 2017, arXiv:1706.03762, sec. 3.5), the timestep embedding
  of DDPM (Ho et al. 2020, arXiv:2006.11239, app. B), ADM and DiT;
* random Gaussian Fourier features (Tancik et al. 2020, arXiv:2006.10739, sec. 4), used for
  continuous noise levels by NCSN++ (Song et al. 2021, arXiv:2011.13456, app. H.1).

`TimestepEmbedder` follows either with a two-layer MLP, as ADM and DiT do.

The module also holds what every network in `diffcore.nets` shares: the preset lookup behind
``from_preset`` (unknown names get a difflib suggestion) and a seeded re-initialisation, so
that a model's weights are a function of the ``generator`` it was built with.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self, TypeVar

import torch
from torch import Tensor, nn

__all__ = [
    "GaussianFourierFeatures",
    "SinusoidalEmbedding",
    "TimestepEmbedder",
    "timestep_embedding",
]

# Transformer positional encoding, Vaswani et al. 2017, sec. 3.5: wavelengths up to 2*pi*10^4.
DEFAULT_MAX_PERIOD = 10_000.0
# NCSN++ Fourier-feature scale for log-sigma inputs: score_sde configs, `model.fourier_scale = 16`.
DEFAULT_FOURIER_SCALE = 16.0

TimeEmbeddingKind = Literal["sinusoidal", "fourier"]
_C = TypeVar("_C")


def timestep_embedding(t: Tensor, dim: int, *, max_period: float = DEFAULT_MAX_PERIOD) -> Tensor:
    """Sinusoidal features of scalar times (Vaswani et al. 2017, sec. 3.5; DDPM app. B).

    Frequency ``k`` of ``half = dim // 2`` is ``max_period ** (-k / half)``; the output is
    ``[cos(t * f), sin(t * f)]`` and one zero column when ``dim`` is odd. Times may be
    fractional; they are not rescaled here.

    Args:
        t: (B,) times or noise levels, any real dtype.
        dim: number of output features, >= 2.
        max_period: longest wavelength (divided by 2*pi).

    Returns:
        (B, dim) on ``t``'s device; float64 when ``t`` is float64, else float32.

    >>> timestep_embedding(torch.tensor([0.0, 1.0]), 8).shape
    torch.Size([2, 8])
    """
    if t.ndim != 1:
        raise ValueError(f"`t` must have shape (B,), got {tuple(t.shape)}.")
    if dim < 2:
        raise ValueError(f"`dim` must be >= 2, got {dim}.")
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    half = dim // 2
    exponent = torch.arange(half, device=t.device, dtype=dtype) / half
    freqs = torch.exp(-math.log(max_period) * exponent)
    args = t.to(dtype)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class SinusoidalEmbedding(nn.Module):
    """`timestep_embedding` of ``scale * t`` as a module (no parameters).

    Args:
        dim: number of output features.
        scale: multiplies ``t`` first; 1000 maps t in [0, 1] onto DDPM's step range.
        max_period: longest wavelength (divided by 2*pi).
    """

    def __init__(
        self, dim: int, *, scale: float = 1.0, max_period: float = DEFAULT_MAX_PERIOD
    ) -> None:
        super().__init__()
        self.dim = dim
        self.scale = scale
        self.max_period = max_period

    def forward(self, t: Tensor) -> Tensor:
        """Embed times.

        Args:
            t: (B,) times.

        Returns:
            (B, dim), see `timestep_embedding` for the dtype.
        """
        return timestep_embedding(t * self.scale, self.dim, max_period=self.max_period)


class GaussianFourierFeatures(nn.Module):
    """Random Fourier features ``[sin(2 pi t w), cos(2 pi t w)]``, ``w ~ N(0, scale^2)``.

    Tancik et al. 2020 (arXiv:2006.10739), sec. 4; the time embedding of NCSN++ (Song et al.
    2021, arXiv:2011.13456, app. H.1), where ``t`` is ``log(sigma)`` and scale is 16. The
    frequencies are a fixed buffer (saved with the model, not trained).

    Args:
        dim: number of output features, even.
        scale: standard deviation of the frequencies.
        generator: draws the frequencies; the global RNG when None.
    """

    freqs: Tensor

    def __init__(
        self,
        dim: int,
        *,
        scale: float = DEFAULT_FOURIER_SCALE,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"`dim` must be even and >= 2, got {dim}.")
        device = generator.device if generator is not None else torch.device("cpu")
        draw = torch.randn(dim // 2, generator=generator, device=device) * scale
        # Built on the default device (CPU, or meta when loading weights); draws stay on CPU.
        self.register_buffer("freqs", torch.empty(dim // 2).copy_(draw))
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        """Embed times.

        Args:
            t: (B,) times.

        Returns:
            (B, dim), dtype of the frequency buffer.
        """
        if t.ndim != 1:
            raise ValueError(f"`t` must have shape (B,), got {tuple(t.shape)}.")
        args = 2 * math.pi * t.to(self.freqs.dtype)[:, None] * self.freqs[None]
        return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """Time features followed by Linear-SiLU-Linear, as in ADM and DiT.

    Args:
        out_dim: width of the embedding handed to the network's blocks.
        freq_dim: number of sinusoidal or Fourier features.
        kind: ``"sinusoidal"`` (DDPM/ADM/DiT) or ``"fourier"`` (NCSN++).
        time_scale: multiplies ``t`` before the sinusoidal features (1000: t in [0, 1] onto
            DDPM's step range); the Fourier features see ``t`` as given.
        fourier_scale: standard deviation of the Fourier frequencies.
        generator: draws the Fourier frequencies.
    """

    def __init__(
        self,
        out_dim: int,
        *,
        freq_dim: int,
        kind: TimeEmbeddingKind = "sinusoidal",
        time_scale: float = 1.0,
        fourier_scale: float = DEFAULT_FOURIER_SCALE,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.features: nn.Module
        if kind == "sinusoidal":
            self.features = SinusoidalEmbedding(freq_dim, scale=time_scale)
        elif kind == "fourier":
            self.features = GaussianFourierFeatures(
                freq_dim, scale=fourier_scale, generator=generator
            )
        else:
            raise ValueError(f"`kind` must be 'sinusoidal' or 'fourier', got {kind!r}.")
        self.mlp = nn.Sequential(
            nn.Linear(freq_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim)
        )

    def forward(self, t: Tensor) -> Tensor:
        """Embed times.

        Args:
            t: (B,) times.

        Returns:
            (B, out_dim) in the dtype of the MLP weights.
        """
        feats = self.features(t)
        return self.mlp(feats.to(self.mlp[0].weight.dtype))


def broadcast_time(t: Tensor | float, batch: int, like: Tensor) -> Tensor:
    """Return ``t`` as a (B,) tensor on ``like``'s device.

    Args:
        t: a scalar, a 0-dim or (1,) tensor (one time for the batch), or (B,).
        batch: B.
        like: the network input, for the device.

    Returns:
        (B,) times.
    """
    t = torch.as_tensor(t, device=like.device)
    if t.ndim == 0 or t.shape == (1,):
        return t.reshape(1).expand(batch)
    if t.shape != (batch,):
        raise ValueError(
            f"`t` must be a scalar or have shape (B,) = ({batch},), got {tuple(t.shape)}."
        )
    return t


def resolve_preset(
    presets: Mapping[str, _C], name: str, overrides: Mapping[str, Any], *, owner: str
) -> _C:
    """Look up ``presets[name]`` and apply ``dataclasses.replace(config, **overrides)``.

    Unknown preset names and unknown override fields raise a ValueError that suggests the
    closest known name (difflib).

    Args:
        presets: name -> frozen config dataclass.
        name: the preset asked for.
        overrides: field -> value.
        owner: what the presets are for, used in the error messages.

    Returns:
        The config with the overrides applied.
    """
    if name not in presets:
        close = difflib.get_close_matches(name, list(presets), n=1, cutoff=0.0)
        hint = f" did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown {owner} preset {name!r};{hint} known: {', '.join(presets)}.")
    config = presets[name]
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"preset {name!r} of {owner} is not a dataclass instance.")
    names = [f.name for f in dataclasses.fields(config)]
    for key in overrides:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.0)
            hint = f" did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown {owner} config field {key!r} in overrides;{hint} "
                f"fields: {', '.join(names)}."
            )
    return dataclasses.replace(config, **overrides)


def reset_parameters_(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Redraw every Linear / Conv / Embedding weight with PyTorch's default law from `generator`.

    Linear and Conv: Kaiming-uniform weights with ``a = sqrt(5)`` and biases uniform in
    ``+-1/sqrt(fan_in)`` (what ``nn.Linear.reset_parameters`` draws); Embedding: N(0, 1).
    Networks call this and then apply their own special initialisations (zeroed output
    layers), so the weights depend only on ``generator``.

    Args:
        module: modified in place.
        generator: CPU generator; the global RNG when None.
    """
    for sub in module.modules():
        if isinstance(sub, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            _kaiming_default_(sub.weight, sub.bias, generator)
        elif isinstance(sub, nn.Embedding):
            _on_cpu_(sub.weight, lambda w: nn.init.normal_(w, generator=generator))


_KAIMING_A = math.sqrt(5)  # the slope PyTorch's nn.Linear/nn.ConvNd reset_parameters use


def _kaiming_default_(
    weight: Tensor, bias: Tensor | None, generator: torch.Generator | None
) -> None:
    _on_cpu_(weight, lambda w: nn.init.kaiming_uniform_(w, a=_KAIMING_A, generator=generator))
    if bias is not None:
        fan_in = weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        _on_cpu_(bias, lambda b: nn.init.uniform_(b, -bound, bound, generator=generator))


def _on_cpu_(param: Tensor, init: Any) -> None:
    """Apply a CPU-generator init to `param` on any device (the draw happens on the CPU)."""
    if param.is_meta:  # shapes only (e.g. from_pretrained): nothing to draw
        return
    with torch.no_grad():
        if param.device.type == "cpu":
            init(param)
        else:
            tmp = torch.empty(param.shape, dtype=param.dtype)
            init(tmp)
            param.copy_(tmp)


def zero_(module: nn.Module) -> nn.Module:
    """Set all parameters of `module` to zero in place and return it."""
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    return module


def multihead_attention(
    q: Tensor, k: Tensor, v: Tensor, heads: int, *, mask: Tensor | None = None
) -> Tensor:
    """Softmax attention over token sequences with ``heads`` heads (scaled dot product).

    Args:
        q: (B, Lq, C) queries.
        k: (B, Lk, C) keys.
        v: (B, Lk, C) values.
        heads: number of heads; must divide C.
        mask: (B, Lk) bool, True for keys that may be attended to, or None for all.

    Returns:
        (B, Lq, C).
    """
    b, lq, c = q.shape
    lk = k.shape[1]
    if c % heads:
        raise ValueError(f"`heads` ({heads}) must divide the channel count {c}.")
    qh = q.reshape(b, lq, heads, c // heads).transpose(1, 2)
    kh = k.reshape(b, lk, heads, c // heads).transpose(1, 2)
    vh = v.reshape(b, lk, heads, c // heads).transpose(1, 2)
    attn_mask = None
    if mask is not None:
        if mask.shape != (b, lk) or mask.dtype != torch.bool:
            raise ValueError(
                f"`context_mask` must be a bool tensor of shape (B, L) = ({b}, {lk}), "
                f"got {mask.dtype} {tuple(mask.shape)}."
            )
        attn_mask = mask[:, None, None, :]
    out = nn.functional.scaled_dot_product_attention(qh, kh, vh, attn_mask=attn_mask)
    return out.transpose(1, 2).reshape(b, lq, c)


def check_context(context: Tensor | None, context_dim: int, batch: int, owner: str) -> None:
    """Raise a ValueError unless `context` is None or (B, L, context_dim) for a network with it."""
    if context is None:
        return
    if not context_dim:
        raise ValueError(
            f"`context` was given but this {owner} has context_dim=0; build it with "
            "context_dim > 0 for cross-attention."
        )
    if context.ndim != 3 or context.shape[0] != batch or context.shape[2] != context_dim:
        raise ValueError(
            f"`context` must have shape (B, L, context_dim) = ({batch}, L, {context_dim}), "
            f"got {tuple(context.shape)}."
        )


def embed_condition(
    cond: Tensor | None,
    *,
    label_embed: nn.Embedding | None,
    vector_embed: nn.Linear | None,
    batch: int,
    like: Tensor,
    owner: str,
) -> Tensor | None:
    """Embed a class label or a condition vector (None when there is nothing to add).

    Class labels use a table with one extra row: label ``num_classes`` is the null
    (unconditional) label of classifier-free guidance (Ho & Salimans 2022, arXiv:2207.12598),
    and ``cond=None`` means the null label for the whole batch. A vector condition that is None
    adds nothing.

    Args:
        cond: (B,) integer labels in [0, num_classes], or (B, cond_dim) vectors, or None.
        label_embed: table of num_classes + 1 rows, or None.
        vector_embed: Linear(cond_dim, emb_dim), or None.
        batch: B.
        like: a tensor with the target device and dtype.
        owner: the network's name, for error messages.

    Returns:
        (B, emb_dim) or None.
    """
    if label_embed is not None:
        num_classes = label_embed.num_embeddings - 1
        if cond is None:
            labels = torch.full((batch,), num_classes, device=like.device, dtype=torch.long)
        else:
            if cond.shape != (batch,) or cond.is_floating_point() or cond.is_complex():
                raise ValueError(
                    f"`cond` must be integer class labels of shape (B,) = ({batch},) for this "
                    f"{owner} (num_classes={num_classes}), got {cond.dtype} {tuple(cond.shape)}."
                )
            if bool(((cond < 0) | (cond > num_classes)).any()):
                raise ValueError(
                    f"`cond` labels must lie in [0, {num_classes}] ({num_classes} = null label), "
                    f"got values in [{int(cond.min())}, {int(cond.max())}]."
                )
            labels = cond.long()
        return label_embed(labels).to(like.dtype)
    if vector_embed is not None:
        if cond is None:
            return None
        if cond.shape != (batch, vector_embed.in_features):
            raise ValueError(
                f"`cond` must have shape (B, cond_dim) = ({batch}, {vector_embed.in_features}), "
                f"got {tuple(cond.shape)}."
            )
        return vector_embed(cond.to(like.dtype))
    if cond is not None:
        raise ValueError(
            f"`cond` was given but this {owner} is unconditional; build it with num_classes > 0 "
            "(labels) or cond_dim > 0 (vectors)."
        )
    return None


class FromPreset:
    """Mixin giving a network ``from_preset(name, *, generator=None, **overrides)``.

    The class sets ``presets`` (name -> config) and takes ``(config, *, generator=None)``.
    """

    presets: ClassVar[Mapping[str, Any]]

    @classmethod
    def from_preset(
        cls, name: str, *, generator: torch.Generator | None = None, **overrides: Any
    ) -> Self:
        """Build from the named preset, with config fields overridden.

        Args:
            name: preset name, e.g. ``"tiny"``; an unknown name gets a "did you mean" error.
            generator: draws the initial weights.
            **overrides: config fields to replace.

        Returns:
            The network.
        """
        config = resolve_preset(cls.presets, name, overrides, owner=cls.__name__)
        return cls(config, generator=generator)  # type: ignore[call-arg]

"""Reference denoiser networks: MLP, ADM U-Net (1-D/2-D/3-D), modern PDE U-Net, DiT, MM-DiT.

Every network has the signature ``forward(x, t, *, cond=None, context=None)`` with ``t`` a (B,)
float noise level or time, is sized by a frozen config dataclass with named presets
(``Net.from_preset("tiny", **overrides)``), and draws its initial weights from an optional
``generator``.
"""

from .dit import (
    DIT_PRESETS,
    MMDIT_PRESETS,
    DiT,
    DiTBlock,
    DiTConfig,
    MMDiT,
    MMDiTBlock,
    MMDiTConfig,
    sincos_pos_embed_2d,
)
from .embeddings import (
    GaussianFourierFeatures,
    SinusoidalEmbedding,
    TimestepEmbedder,
    timestep_embedding,
)
from .mlp import MLP_PRESETS, MLPConfig, MLPDenoiser
from .modern_unet import MODERN_UNET_PRESETS, ModernUNet, ModernUNetConfig
from .unet import UNET_PRESETS, FeatureCache, UNet, UNetConfig

__all__ = [
    "DIT_PRESETS",
    "MLP_PRESETS",
    "MMDIT_PRESETS",
    "MODERN_UNET_PRESETS",
    "UNET_PRESETS",
    "DiT",
    "DiTBlock",
    "DiTConfig",
    "FeatureCache",
    "GaussianFourierFeatures",
    "MLPConfig",
    "MLPDenoiser",
    "MMDiT",
    "MMDiTBlock",
    "MMDiTConfig",
    "ModernUNet",
    "ModernUNetConfig",
    "SinusoidalEmbedding",
    "TimestepEmbedder",
    "UNet",
    "UNetConfig",
    "sincos_pos_embed_2d",
    "timestep_embedding",
]

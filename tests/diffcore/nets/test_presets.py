import pytest
import torch

from diffcore.nets import (
    DIT_PRESETS,
    MMDIT_PRESETS,
    UNET_PRESETS,
    DiT,
    MLPDenoiser,
    MMDiT,
    UNet,
)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_unknown_preset_suggests_closest():
    with pytest.raises(ValueError, match=r"unknown UNet preset 'tiyn'; did you mean 'tiny'\?"):
        UNet.from_preset("tiyn")
    with pytest.raises(ValueError, match=r"did you mean 'DiT-XL/2'\?"):
        DiT.from_preset("DiT-XL-2")
    with pytest.raises(ValueError, match="known: tiny"):
        MLPDenoiser.from_preset("huge")


def test_unknown_override_suggests_field():
    with pytest.raises(ValueError, match=r"unknown UNet config field 'dim'.*'dims'"):
        UNet.from_preset("tiny", dim=3)


def test_paper_scale_presets_match_published_sizes():
    # Sizes from the papers, built on the meta device (no memory, no init).
    with torch.device("meta"):
        dit = DiT.from_preset("DiT-XL/2")
        adm = UNet.from_preset("adm-imagenet64")
        ddpm = UNet.from_preset("ddpm-cifar10")
        sd3 = MMDiT.from_preset("sd3-medium")
    cfg = DIT_PRESETS["DiT-XL/2"]
    assert (cfg.depth, cfg.hidden_size, cfg.num_heads, cfg.patch_size) == (28, 1152, 16, 2)
    assert round(n_params(dit) / 1e6) == 675  # Peebles & Xie 2023, Table 4
    assert UNET_PRESETS["adm-imagenet64"].channel_mult == (1, 2, 3, 4)
    assert round(n_params(adm) / 1e6) == 296  # Dhariwal & Nichol 2021, ImageNet 64 model
    assert round(n_params(ddpm) / 1e6, 1) == 35.7  # Ho et al. 2020, sec. 4 (CIFAR-10)
    assert MMDIT_PRESETS["sd3-medium"].hidden_size == 64 * MMDIT_PRESETS["sd3-medium"].depth
    assert 1.9e9 < n_params(sd3) < 2.2e9  # "2B"


def test_small_presets_build_and_run():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 8, 8)
    assert UNet.from_preset("small", generator=gen)(x, torch.rand(1)).shape == x.shape
    assert MLPDenoiser.from_preset("small", generator=gen)(torch.randn(2, 2), torch.rand(2)).shape
    for name in ["DiT-S/2", "DiT-S/4"]:
        assert name in DIT_PRESETS

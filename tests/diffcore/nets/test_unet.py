import dataclasses

import pytest
import torch

from diffcore.nets import UNET_PRESETS, FeatureCache, UNet, UNetConfig


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_dtype_over_dims(dims, dtype):
    net = UNet.from_preset("tiny", dims=dims, in_channels=2, out_channels=3, generator=gen())
    net = net.to(dtype)
    x = torch.randn(2, 2, *([8] * dims), dtype=dtype)
    out = net(x, torch.rand(2, dtype=dtype))
    assert out.shape == (2, 3, *([8] * dims)) and out.dtype == dtype


def test_non_square_input_and_ddpm_style_blocks():
    net = UNet.from_preset(
        "tiny", scale_shift_norm=False, resblock_updown=False, head_channels=None, num_heads=2,
        generator=gen(),
    )  # fmt: skip
    assert net(torch.randn(1, 1, 8, 12), torch.rand(1)).shape == (1, 1, 8, 12)


def test_zero_output_at_init():
    # ADM zero-initialises the output convolution.
    net = UNet.from_preset("tiny", generator=gen())
    assert torch.equal(net(torch.randn(2, 1, 8, 8), torch.rand(2)), torch.zeros(2, 1, 8, 8))


def test_time_changes_output(perturb):
    net = perturb(UNet.from_preset("tiny", generator=gen()))
    x = torch.randn(2, 1, 8, 8)
    assert (net(x, torch.full((2,), 0.1)) - net(x, torch.full((2,), 0.9))).abs().max() > 1e-3


def test_class_labels_change_output_and_none_is_null_label(perturb):
    net = perturb(UNet.from_preset("tiny", num_classes=5, generator=gen()))
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    a = net(x, t, cond=torch.tensor([0, 0]))
    b = net(x, t, cond=torch.tensor([3, 3]))
    assert (a - b).abs().max() > 1e-3
    torch.testing.assert_close(net(x, t), net(x, t, cond=torch.tensor([5, 5])), rtol=0, atol=0)


def test_vector_condition_changes_output(perturb):
    net = perturb(UNet.from_preset("tiny", cond_dim=4, generator=gen()))
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    assert (net(x, t, cond=torch.zeros(2, 4)) - net(x, t, cond=torch.ones(2, 4))).abs().max() > 1e-3


def test_cross_attention_context_changes_output_and_mask(perturb):
    net = perturb(UNet.from_preset("tiny", context_dim=6, generator=gen()))
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    ctx = torch.randn(2, 3, 6, generator=gen(1))
    ctx2 = torch.randn(2, 3, 6, generator=gen(2))
    assert (net(x, t, context=ctx) - net(x, t, context=ctx2)).abs().max() > 1e-3
    assert (net(x, t, context=ctx) - net(x, t)).abs().max() > 1e-3
    # masked-out context tokens do not matter
    mask = torch.tensor([[True, False, False], [True, True, False]])
    ctx3 = ctx.clone()
    ctx3[0, 1:] = 100.0
    ctx3[1, 2] = -100.0
    torch.testing.assert_close(
        net(x, t, context=ctx, context_mask=mask), net(x, t, context=ctx3, context_mask=mask)
    )


@pytest.mark.parametrize("dims", [1, 2])
def test_cache_fresh_matches_full_forward(perturb, dims):
    net = perturb(
        UNet.from_preset("tiny", dims=dims, num_classes=3, context_dim=4, generator=gen())
    )
    x = torch.randn(2, 1, *([8] * dims), generator=gen(3))
    t, cond, ctx = torch.rand(2, generator=gen(4)), torch.tensor([0, 2]), torch.randn(2, 2, 4)
    full = net(x, t, cond=cond, context=ctx)
    for depth in range(1, net.num_skips + 1):
        cache = FeatureCache(depth)
        filled = net(x, t, cond=cond, context=ctx, cache=cache)
        assert cache.filled
        reused = net(x, t, cond=cond, context=ctx, cache=cache)
        torch.testing.assert_close(filled, full, rtol=0, atol=0)
        torch.testing.assert_close(reused, full, rtol=0, atol=0)


def test_cache_reuses_deep_features(perturb):
    net = perturb(UNet.from_preset("tiny", generator=gen()))
    x = torch.randn(2, 1, 8, 8)
    cache = FeatureCache(1)
    net(x, torch.full((2,), 0.2), cache=cache)
    stale = net(x, torch.full((2,), 0.8), cache=cache)  # deep features from t = 0.2
    fresh = net(x, torch.full((2,), 0.8))
    assert (stale - fresh).abs().max() > 1e-4
    cache.clear()
    torch.testing.assert_close(net(x, torch.full((2,), 0.8), cache=cache), fresh)


def test_cache_errors():
    net = UNet.from_preset("tiny", generator=gen())
    with pytest.raises(ValueError, match=r"cache.depth` must be in \[1, 4\]"):
        net(torch.randn(2, 1, 8, 8), torch.rand(2), cache=FeatureCache(0))
    cache = FeatureCache(2)
    net(torch.randn(2, 1, 8, 8), torch.rand(2), cache=cache)
    with pytest.raises(ValueError, match="clear the cache"):
        net(torch.randn(3, 1, 8, 8), torch.rand(3), cache=cache)


def test_input_errors_name_the_problem():
    net = UNet.from_preset("tiny", generator=gen())
    with pytest.raises(ValueError, match=r"`x` must have shape \(B, 1, S0, S1\) for dims=2"):
        net(torch.randn(2, 1, 8), torch.rand(2))
    with pytest.raises(ValueError, match=r"multiples of 2.*pad to \(8, 10\)"):
        net(torch.randn(2, 1, 7, 9), torch.rand(2))
    with pytest.raises(ValueError, match="unconditional"):
        net(torch.randn(2, 1, 8, 8), torch.rand(2), cond=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="context_dim=0"):
        net(torch.randn(2, 1, 8, 8), torch.rand(2), context=torch.randn(2, 3, 4))
    labelled = UNet.from_preset("tiny", num_classes=3, generator=gen())
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\]"):
        labelled(torch.randn(2, 1, 8, 8), torch.rand(2), cond=torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="integer class labels"):
        labelled(torch.randn(2, 1, 8, 8), torch.rand(2), cond=torch.rand(2))


def test_config_validation():
    base = UNET_PRESETS["tiny"]
    with pytest.raises(ValueError, match="`dims` must be 1, 2 or 3"):
        dataclasses.replace(base, dims=4)
    with pytest.raises(ValueError, match="norm_groups"):
        dataclasses.replace(base, norm_groups=32)
    with pytest.raises(ValueError, match="attention_levels"):
        dataclasses.replace(base, attention_levels=(2,))
    with pytest.raises(ValueError, match="at most one"):
        dataclasses.replace(base, num_classes=3, cond_dim=2)
    assert isinstance(base, UNetConfig)

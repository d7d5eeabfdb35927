import pytest
import torch

from diffcore.nets import MODERN_UNET_PRESETS, ModernUNet


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_dtype(dims, dtype):
    net = ModernUNet.from_preset(
        "tiny", dims=dims, in_channels=3, out_channels=2, num_params=2, generator=gen()
    ).to(dtype)
    x = torch.randn(2, 3, *([8] * dims), dtype=dtype)
    out = net(x, torch.rand(2, dtype=dtype), cond=torch.randn(2, 2, dtype=dtype))
    assert out.shape == (2, 2, *([8] * dims)) and out.dtype == dtype


def test_zero_output_at_init_and_weights_follow_generator():
    net = ModernUNet.from_preset("tiny", generator=gen())
    assert torch.equal(net(torch.randn(2, 1, 16), torch.rand(2)), torch.zeros(2, 1, 16))
    same = ModernUNet.from_preset("tiny", generator=gen())
    other = ModernUNet.from_preset("tiny", generator=gen(1))
    a, b, c = (dict(n.named_parameters()) for n in (net, same, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["input_proj.weight"], c["input_proj.weight"])


@pytest.mark.parametrize("scale_shift", [False, True])
def test_circular_padding_is_equivariant_to_periodic_shifts(perturb, scale_shift):
    # With periodic padding the network commutes with shifts by multiples of the coarsest
    # grid spacing (2^(levels-1) points): no boundary anywhere.
    net = perturb(
        ModernUNet.from_preset(
            "tiny", channel_mult=(1, 2, 2), scale_shift_norm=scale_shift, generator=gen()
        ),
        std=0.2,
    )
    x, t = torch.randn(2, 1, 32, dtype=torch.float64), torch.rand(2, dtype=torch.float64)
    net = net.double()
    y = net(x, t)
    for shift in (4, 8, 20):
        torch.testing.assert_close(net(x.roll(shift, -1), t), y.roll(shift, -1))
    # Zero padding has a boundary, so it is not shift-equivariant.
    zero = perturb(ModernUNet.from_preset("tiny", padding_mode="zeros", generator=gen()), std=0.2)
    yz = zero.double()(x, t)
    assert (zero(x.roll(8, -1), t) - yz.roll(8, -1)).abs().max() > 1e-3


def test_two_dimensional_periodic_equivariance(perturb):
    net = perturb(ModernUNet.from_preset("tiny", dims=2, generator=gen()), std=0.2).double()
    x, t = torch.randn(1, 1, 8, 12, dtype=torch.float64), torch.rand(1, dtype=torch.float64)
    torch.testing.assert_close(net(x.roll((2, 4), (-2, -1)), t), net(x, t).roll((2, 4), (-2, -1)))


def test_step_and_each_pde_scalar_change_the_output(perturb):
    net = perturb(ModernUNet.from_preset("tiny", num_params=2, generator=gen()))
    x, t, p = torch.randn(2, 1, 16), torch.full((2,), 0.5), torch.zeros(2, 2)
    base = net(x, t, cond=p)
    assert (net(x, torch.full((2,), 2.0), cond=p) - base).abs().max() > 1e-3
    for i in range(2):
        q = p.clone()
        q[:, i] = 1.0
        assert (net(x, t, cond=q) - base).abs().max() > 1e-3
    # Each scalar has its own embedding MLP: swapping the two values changes the output.
    assert (net(x, t, cond=torch.tensor([[1.0, 0.0]] * 2)) - net(
        x, t, cond=torch.tensor([[0.0, 1.0]] * 2)
    )).abs().max() > 1e-3  # fmt: skip


def test_scalar_time_broadcasts():
    net = ModernUNet.from_preset("tiny", generator=gen())
    x = torch.randn(3, 1, 8)
    torch.testing.assert_close(net(x, 0.3), net(x, torch.full((3,), 0.3)))


def test_learns_a_periodic_smoothing_operator():
    # One gradient-descent run: fit u -> (u(x-1) + u(x) + u(x+1)) / 3 (a periodic stencil).
    torch.manual_seed(0)
    net = ModernUNet.from_preset("tiny", hidden_channels=16, channel_mult=(1, 2), generator=gen())
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = gen(1)
    losses = []
    for _ in range(150):
        u = torch.randn(16, 1, 32, generator=g)
        target = (u.roll(1, -1) + u + u.roll(-1, -1)) / 3
        loss = ((net(u, torch.zeros(16)) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.1 * sum(losses[:10]) / 10


def test_paper_preset_size():
    # PDEArena's Unetmod-1d-64 (hidden 64, cumulative multipliers 1, 2, 2, 4, two blocks).
    with torch.device("meta"):
        net = ModernUNet.from_preset("pdearena-1d-64")
    cfg = MODERN_UNET_PRESETS["pdearena-1d-64"]
    widths = [cfg.hidden_channels * m for m in cfg.channel_mult]
    assert widths == [64, 128, 256, 1024]
    assert 50e6 < sum(p.numel() for p in net.parameters()) < 60e6


def test_bad_inputs_raise_clear_errors():
    net = ModernUNet.from_preset("tiny", num_params=2, generator=gen())
    x, t = torch.randn(2, 1, 16), torch.rand(2)
    with pytest.raises(ValueError, match=r"`cond` must hold the 2 PDE scalars"):
        net(x, t)
    with pytest.raises(ValueError, match=r"`cond` must hold the 2 PDE scalars"):
        net(x, t, cond=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="NaN"):
        net(x, t, cond=torch.tensor([[0.0, float("nan")]] * 2))
    with pytest.raises(ValueError, match="multiples of 2"):
        net(torch.randn(2, 1, 15), t, cond=torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"shape \(B, 1, \*S\)"):
        net(torch.randn(2, 3, 16), t, cond=torch.zeros(2, 2))
    plain = ModernUNet.from_preset("tiny", generator=gen())
    with pytest.raises(ValueError, match="num_params=0"):
        plain(x, t, cond=torch.zeros(2, 1))
    with pytest.raises(ValueError, match="padding_mode"):
        ModernUNet.from_preset("tiny", padding_mode="periodic")
    with pytest.raises(ValueError, match="`dims` must be 1 or 2"):
        ModernUNet.from_preset("tiny", dims=3)
    with pytest.raises(ValueError, match="norm_groups"):
        ModernUNet.from_preset("tiny", norm_groups=3)

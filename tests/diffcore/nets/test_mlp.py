import pytest
import torch

from diffcore.nets import MLP_PRESETS, MLPConfig, MLPDenoiser


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", list(MLP_PRESETS))
def test_shapes(name):
    net = MLPDenoiser.from_preset(name, dim=3, generator=gen())
    x = torch.randn(5, 3)
    assert net(x, torch.rand(5)).shape == (5, 3)


def test_dtype_follows_input_and_weights():
    net = MLPDenoiser.from_preset("tiny", generator=gen()).double()
    out = net(torch.randn(4, 2, dtype=torch.float64), torch.rand(4, dtype=torch.float64))
    assert out.dtype == torch.float64
    net32 = MLPDenoiser.from_preset("tiny", generator=gen())
    assert net32(torch.randn(4, 2, dtype=torch.float64), torch.rand(4)).dtype == torch.float64


def test_scalar_time_broadcasts():
    net = MLPDenoiser.from_preset("tiny", generator=gen())
    x = torch.randn(4, 2)
    torch.testing.assert_close(net(x, torch.tensor(0.3)), net(x, torch.full((4,), 0.3)))


def test_condition_changes_output(perturb):
    net = perturb(MLPDenoiser.from_preset("tiny", cond_dim=3, generator=gen()))
    x, t = torch.randn(4, 2), torch.rand(4)
    a = net(x, t, cond=torch.zeros(4, 3))
    b = net(x, t, cond=torch.ones(4, 3))
    assert (a - b).abs().max() > 1e-3
    assert net(x, t).shape == (4, 2)  # cond=None: unconditional


def test_seeded_init():
    a = MLPDenoiser.from_preset("tiny", generator=gen(0))
    b = MLPDenoiser.from_preset("tiny", generator=gen(0))
    c = MLPDenoiser.from_preset("tiny", generator=gen(1))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_blocks_start_as_identity():
    net = MLPDenoiser.from_preset("tiny", generator=gen())
    h, emb = torch.randn(3, 64), torch.randn(3, 64)
    for block in net.blocks:
        assert torch.equal(block(h, emb), h)


def test_errors_name_the_problem():
    net = MLPDenoiser.from_preset("tiny", generator=gen())
    with pytest.raises(ValueError, match=r"`x` must have shape \(B, 2\)"):
        net(torch.randn(4, 3), torch.rand(4))
    with pytest.raises(ValueError, match="unconditional"):
        net(torch.randn(4, 2), torch.rand(4), cond=torch.zeros(4, 1))
    with pytest.raises(ValueError, match=r"`t` must be a scalar or have shape \(B,\)"):
        net(torch.randn(4, 2), torch.rand(3))
    with pytest.raises(ValueError, match="hidden"):
        MLPConfig(dim=2, hidden=0, depth=1)

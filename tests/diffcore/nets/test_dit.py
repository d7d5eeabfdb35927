import pytest
import torch

from diffcore.nets import DiT, DiTBlock, MMDiT, MMDiTBlock, sincos_pos_embed_2d


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dit_shapes_dtype(dtype):
    net = DiT.from_preset("tiny", in_channels=3, out_channels=6, generator=gen()).to(dtype)
    x = torch.randn(2, 3, 8, 12, dtype=dtype)
    out = net(x, torch.rand(2, dtype=dtype))
    assert out.shape == (2, 6, 8, 12) and out.dtype == dtype


def test_adaln_zero_dit_outputs_zero_and_blocks_are_identity_at_init():
    # adaLN-Zero (Peebles & Xie 2023, sec. 3.2): the modulation layers regress gates that start
    # at zero, so every block is the identity and, with the zeroed final layer, the output is 0
    # for any input, time, label and context.
    net = DiT.from_preset("tiny", num_classes=4, context_dim=5, generator=gen())
    x = torch.randn(3, 1, 8, 8, generator=gen(1))
    out = net(x, torch.rand(3), cond=torch.tensor([0, 2, 4]), context=torch.randn(3, 2, 5))
    assert torch.equal(out, torch.zeros_like(out))
    tokens, c = torch.randn(3, 16, 64), torch.randn(3, 64)
    for block in net.blocks:
        assert torch.equal(block(tokens, c, context=torch.randn(3, 2, 5)), tokens)


def test_adaln_zero_only_gates_are_zero(perturb):
    # The zero is in the modulation, not in the branches: once the adaLN layers move, the
    # output does too.
    net = DiT.from_preset("tiny", generator=gen())
    assert any(p.abs().sum() > 0 for p in net.blocks[0].qkv.parameters())
    for block in net.blocks:
        perturb(block.ada)
    perturb(net.final)
    x = torch.randn(2, 1, 8, 8)
    assert net(x, torch.rand(2)).abs().max() > 1e-4


def test_dit_conditioning_changes_output(perturb):
    net = perturb(DiT.from_preset("tiny", num_classes=4, context_dim=5, generator=gen()))
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    a = net(x, t, cond=torch.tensor([0, 1]))
    b = net(x, t, cond=torch.tensor([2, 3]))
    assert (a - b).abs().max() > 1e-3
    torch.testing.assert_close(net(x, t), net(x, t, cond=torch.tensor([4, 4])), rtol=0, atol=0)
    c = net(x, t, cond=torch.tensor([0, 1]), context=torch.randn(2, 3, 5))
    assert (a - c).abs().max() > 1e-3
    vec = perturb(DiT.from_preset("tiny", cond_dim=3, generator=gen()))
    assert (vec(x, t, cond=torch.zeros(2, 3)) - vec(x, t, cond=torch.ones(2, 3))).abs().max() > 1e-3


def test_dit_errors():
    net = DiT.from_preset("tiny", generator=gen())
    with pytest.raises(ValueError, match="multiples of patch_size=2"):
        net(torch.randn(1, 1, 7, 8), torch.rand(1))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.randn(1, 2, 8, 8), torch.rand(1))
    with pytest.raises(ValueError, match="num_heads"):
        DiT.from_preset("tiny", num_heads=5)


def test_pos_embed_rows_and_cols():
    pe = sincos_pos_embed_2d(3, 4, 8, dtype=torch.float64)
    assert pe.shape == (12, 8)
    grid = pe.reshape(3, 4, 8)
    # first half depends on the row only, second half on the column only
    assert torch.equal(grid[:, 0, :4], grid[:, 3, :4])
    assert torch.equal(grid[0, :, 4:], grid[2, :, 4:])
    assert len({tuple(r.tolist()) for r in pe}) == 12


def test_mmdit_shapes_zero_init_and_conditioning(perturb):
    net = MMDiT.from_preset("tiny", qk_norm=True, generator=gen())
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    ctx, pooled = torch.randn(2, 5, 16), torch.randn(2, 8)
    out = net(x, t, cond=pooled, context=ctx)
    assert out.shape == (2, 1, 8, 8) and torch.equal(out, torch.zeros_like(out))
    perturb(net)
    a = net(x, t, cond=pooled, context=ctx)
    assert (a - net(x, t, cond=-pooled, context=ctx)).abs().max() > 1e-3
    assert (a - net(x, t, cond=pooled, context=torch.randn(2, 5, 16))).abs().max() > 1e-3
    assert net(x, t).shape == (2, 1, 8, 8)  # image tokens only


def test_mmdit_block_joint_attention_and_mask(perturb):
    block = perturb(MMDiTBlock(32, 4, qk_norm=True))
    x, c, vec = torch.randn(2, 6, 32), torch.randn(2, 3, 32), torch.randn(2, 32)
    x1, c1 = block(x, c, vec)
    assert x1.shape == x.shape and c1 is not None and c1.shape == c.shape
    # image tokens see the context: changing it changes x
    x2, _ = block(x, torch.randn(2, 3, 32), vec)
    assert (x1 - x2).abs().max() > 1e-4
    # masked context tokens are invisible to the image stream
    mask = torch.tensor([[True, True, False], [True, False, False]])
    c_alt = c.clone()
    c_alt[0, 2] = 50.0
    c_alt[1, 1:] = -50.0
    xa, _ = block(x, c, vec, context_mask=mask)
    xb, _ = block(x, c_alt, vec, context_mask=mask)
    torch.testing.assert_close(xa, xb)
    last = MMDiTBlock(32, 4, context_pre_only=True)
    assert last(x, c, vec)[1] is None


def test_dit_block_identity_without_context_dim():
    block = DiTBlock(32, 4)
    torch.nn.init.zeros_(block.ada.weight)
    torch.nn.init.zeros_(block.ada.bias)
    x = torch.randn(2, 5, 32)
    assert torch.equal(block(x, torch.randn(2, 32)), x)

"""GDSS: equivariance of both score networks, constraints through sampling, training, I/O."""

import dataclasses
import json

import pytest
import torch

from diffcore.processes import VE, LinearVP, NodeMask, SymmetricAdjacency
from diffcore.samplers import S4, EulerMaruyama, PredictorCorrector, ReverseDiffusion
from difflab.science import gdss, graphs

TINY = {
    "nhid": 8, "adim": 8, "depth": 2, "num_layers": 2, "c_hid": 4, "c_final": 2,
    "num_heads": 2, "steps": 4,
}  # fmt: skip


def tiny(name="community-small-quick", **kw):
    return gdss.get_config(name, **{**TINY, **kw})


def random_state(cfg, b=3, *, generator, dtype=torch.float64, padded=True):
    n, f = cfg.max_nodes, cfg.max_feat_num
    mask = torch.ones(b, n, dtype=torch.bool)
    if padded:
        for i in range(b):
            k = int(torch.randint(2, n // 2, (), generator=generator))
            mask[i, torch.randperm(n, generator=generator)[:k]] = False
    x = torch.randn(b, n, f, generator=generator, dtype=dtype) * mask[..., None]
    a = torch.randn(b, n, n, generator=generator, dtype=dtype)
    a = SymmetricAdjacency(mask).project(a)
    return x, a, mask


@pytest.mark.parametrize("trial", range(3))
def test_score_networks_are_permutation_equivariant(trial):
    g = torch.Generator().manual_seed(trial)
    cfg = tiny()
    torch.manual_seed(trial)
    net = gdss.GDSSNet(gdss.pipeline._net_config(cfg)).double()
    x, a, mask = random_state(cfg, generator=g)
    out_x, out_a = net((x, a), None, node_mask=mask)
    perm = torch.randperm(cfg.max_nodes, generator=g)
    px, pa, pm = x[:, perm], a[:, perm][:, :, perm], mask[:, perm]
    qx, qa = net((px, pa), None, node_mask=pm)
    torch.testing.assert_close(qx, out_x[:, perm], atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(qa, out_a[:, perm][:, :, perm], atol=1e-12, rtol=1e-10)
    # each network on its own, too
    torch.testing.assert_close(net.net_x(px, pa, pm), net.net_x(x, a, mask)[:, perm])
    assert out_x.abs().sum() > 0 and out_a.abs().sum() > 0


def test_adjacency_score_is_symmetric_hollow_and_masked():
    g = torch.Generator().manual_seed(0)
    cfg = tiny()
    net = gdss.GDSSNet(gdss.pipeline._net_config(cfg)).double()
    x, a, mask = random_state(cfg, generator=g)
    out_x, out_a = net((x, a), None, node_mask=mask)
    torch.testing.assert_close(out_a, out_a.transpose(1, 2), atol=1e-12, rtol=0)
    assert torch.diagonal(out_a, dim1=1, dim2=2).abs().max() == 0
    pad = ~mask
    assert out_x[pad].abs().max() == 0
    assert out_a[pad].abs().max() == 0 and out_a.transpose(1, 2)[pad].abs().max() == 0


def test_adjacency_powers():
    a = torch.rand(2, 5, 5, dtype=torch.float64)
    p = gdss.adjacency_powers(a, 3)
    torch.testing.assert_close(p[:, 2], a @ a @ a)


@pytest.mark.parametrize(
    ("preset", "kinds"),
    [
        ("community-small", ("VP", "VP")),
        ("ego-small", ("VP", "VP")),
        ("enzymes", ("VP", "VE")),
        ("zinc250k", ("VP", "VE")),
        ("qm9", ("VE", "VE")),
    ],
)
def test_presets_follow_the_paper_sde_pairs(preset, kinds):
    for name in (preset, f"{preset}-quick"):
        cfg = gdss.get_config(name)
        assert (cfg.sde_x, cfg.sde_adj) == kinds
        px, pa = gdss.make_processes(cfg, torch.ones(2, cfg.max_nodes, dtype=torch.bool))
        for p, k in zip((px, pa), kinds, strict=True):
            assert isinstance(p, LinearVP if k == "VP" else VE)
        assert isinstance(px.constraint, NodeMask)
        assert isinstance(pa.constraint, SymmetricAdjacency)
        assert gdss.prediction_kinds(cfg) == tuple("eps" if k == "VP" else "score" for k in kinds)
    assert gdss.get_config("qm9").x_min == 0.1 and gdss.get_config("enzymes").adj_min == 0.2


def test_unknown_preset_names_the_close_match():
    with pytest.raises(ValueError, match="community-small"):
        gdss.get_config("comunity-small")


def test_step_rules_from_config():
    cs = gdss.get_config("community-small")
    rule = gdss.make_step_rule(cs)
    assert isinstance(rule, PredictorCorrector) and isinstance(rule.predictor, EulerMaruyama)
    assert rule.corrector.snr == 0.05 and rule.corrector.scale_eps == 0.7
    assert isinstance(gdss.make_step_rule(gdss.get_config("ego-small")), EulerMaruyama)
    qm9 = gdss.make_step_rule(gdss.get_config("qm9"))
    assert isinstance(qm9.predictor, ReverseDiffusion) and qm9.corrector.snr == 0.2
    s4 = gdss.make_step_rule(gdss.get_config("enzymes"))
    assert isinstance(s4, S4) and s4.snr == 0.15


SAMPLERS = [("euler", True), ("euler", False), ("reverse", True), ("s4", False)]


@pytest.mark.parametrize("preset", ["community-small", "enzymes", "qm9"])
@pytest.mark.parametrize(("sampler", "corrector"), SAMPLERS)
def test_sampling_keeps_adjacency_symmetric_and_padding_zero(preset, sampler, corrector):
    if preset == "community-small":
        cfg = tiny(max_nodes=10, max_feat_num=4, corrector=corrector)
    else:
        cfg = tiny(f"{preset}-quick", max_nodes=10, max_feat_num=4, corrector=corrector)
    model = gdss.GDSS(cfg)
    model.net.node_counts[4:9] = 1.0
    g = torch.Generator().manual_seed(0)
    s = model.sample(5, sampler=sampler, generator=g, progress=False)
    assert torch.equal(s.adj, s.adj.transpose(1, 2))
    assert torch.diagonal(s.adj, dim1=1, dim2=2).abs().max() == 0
    pad = ~s.mask
    assert pad.any() and s.mask.sum(1).min() >= 4
    assert s.x[pad].abs().max() == 0 and s.adj[pad].abs().max() == 0
    assert s.adj.transpose(1, 2)[pad].abs().max() == 0
    for gr, m in zip(s.graphs(remove_isolated=False), s.mask, strict=True):
        assert gr.number_of_nodes() == int(m.sum())
    again = model.sample(5, sampler=sampler, generator=torch.Generator().manual_seed(0),
                         progress=False)  # fmt: skip
    assert torch.equal(again.adj, s.adj)  # seeded


def _community(n_graphs, seed=0):
    return graphs.community_small(n_graphs, generator=torch.Generator().manual_seed(seed))


def test_training_loss_drops(tmp_path):
    cfg = tiny(batch_size=16, lr=5e-3)
    data = gdss.dense_graphs(_community(32), cfg)
    model = gdss.GDSS(cfg)

    def held_out_loss():
        g = torch.Generator().manual_seed(123)
        with torch.no_grad():
            return float(
                sum(model.loss(model.net, (data.x, data.adj, data.mask), g) for _ in range(8)) / 8
            )

    before = held_out_loss()
    res = model.fit(data, steps=60, out_dir=tmp_path, progress=False, seed=0)
    model.net.train(False)
    after = held_out_loss()
    assert after < 0.8 * before, (before, after)
    assert (tmp_path / "checkpoints").is_dir()
    assert res.step == 60 and res.checkpoint is not None
    assert any(p.suffix == ".safetensors" for p in res.checkpoint.iterdir())
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(log) == 60
    # node-count histogram stored for sampling
    torch.testing.assert_close(
        model.net.node_counts.sum(), torch.tensor(32.0, dtype=model.net.node_counts.dtype)
    )


def test_save_load_roundtrip(tmp_path):
    cfg = tiny()
    model = gdss.GDSS(cfg)
    data = gdss.dense_graphs(_community(8), cfg)
    model.fit(data, steps=2, progress=False)
    model.save(tmp_path / "m")
    back = gdss.GDSS.load(tmp_path / "m")
    assert back.config == cfg
    for (k, v), (k2, v2) in zip(
        model.net.state_dict().items(), back.net.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(v, v2)
    assert back.ema_net is not None
    a = model.sample(2, generator=torch.Generator().manual_seed(1), progress=False)
    b = back.sample(2, generator=torch.Generator().manual_seed(1), progress=False)
    assert torch.equal(a.adj, b.adj)


def test_bad_data_shape_is_named():
    model = gdss.GDSS(tiny())
    bad = graphs.DenseGraphs(torch.zeros(2, 5, 3), torch.zeros(2, 5, 5), torch.ones(2, 5).bool())
    with pytest.raises(ValueError, match="data x must have shape"):
        model.fit(bad, steps=1, progress=False)


def test_builtin_community_small_and_evaluate():
    cfg = gdss.get_config("community-small-quick")
    data = gdss.load_data(cfg)
    assert data.train.x.shape == (80, 20, 10) and len(data.test_graphs) == 20
    m = gdss.evaluate(data.test_graphs[:10], reference=data.test_graphs[10:])
    assert set(m) == {"degree", "cluster", "orbit", "spectral"}
    by_name = gdss.evaluate(data.test_graphs[:5], reference="community-small", methods=("degree",))
    assert by_name["degree"] >= 0


def test_config_overrides_are_validated():
    with pytest.raises(ValueError, match="sde_x"):
        dataclasses.replace(gdss.get_config("qm9"), sde_x="sub-VP")

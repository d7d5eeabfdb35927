import json

import pytest
import torch
from torch import nn

from diffcore.nets import MLPDenoiser
from diffcore.train import EMA, CheckpointError, WarmupCosine, fit

K = 6  # steps before the "kill"; with the settings below this lands mid-epoch


def data():
    return torch.randn(37, 2, generator=torch.Generator().manual_seed(0))


def flow_loss(model, batch, generator):
    # noise and times come from the loop's generator, as a diffusion objective's would
    eps = torch.randn(batch.shape, generator=generator, device=batch.device)
    t = torch.rand(batch.shape[0], generator=generator, device=batch.device)
    x_t = (1 - t[:, None]) * batch + t[:, None] * eps
    return ((model(x_t, t) - (eps - batch)) ** 2).mean()


def build(init_seed):
    # dropout > 0: the global RNG is part of what must be restored
    model = MLPDenoiser.from_preset(
        "tiny", dropout=0.2, generator=torch.Generator().manual_seed(init_seed)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    ema = EMA(model, decay=0.95, warmup="power")
    return model, opt, ema


SETTINGS = dict(
    batch_size=8,  # 4 batches per epoch (5 samples dropped)
    grad_accum=3,
    grad_clip=0.5,
    lr_schedule=WarmupCosine(warmup=2, total=2 * K),
    seed=11,
    progress=False,
    checkpoint_every=K,
)


def assert_same_training_state(a, b):
    (m1, o1, e1), (m2, o2, e2) = a, b
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert e1.num_updates == e2.num_updates
    assert all(torch.equal(e1.shadow[k], e2.shadow[k]) for k in e1.shadow)
    d1, d2 = o1.state_dict(), o2.state_dict()
    assert d1["param_groups"] == d2["param_groups"]
    assert d1["state"].keys() == d2["state"].keys()
    for i in d1["state"]:
        for key in d1["state"][i]:
            assert torch.equal(d1["state"][i][key], d2["state"][i][key]), (i, key)


def losses(path):
    return [(r["step"], r["loss"]) for r in map(json.loads, path.read_text().splitlines())]


def test_kill_and_resume_is_bit_identical(tmp_path):
    straight = build(0)
    m, o, e = straight
    res_a = fit(m, flow_loss, data(), steps=2 * K, optimizer=o, ema=e, out_dir=tmp_path / "a",
                **SETTINGS)  # fmt: skip

    first = build(0)
    m, o, e = first
    fit(m, flow_loss, data(), steps=K, optimizer=o, ema=e, out_dir=tmp_path / "b", **SETTINGS)
    del first, m, o, e  # "kill": everything is rebuilt from scratch, with a different init
    resumed = build(123)
    m, o, e = resumed
    res_b = fit(m, flow_loss, data(), steps=2 * K, optimizer=o, ema=e, out_dir=tmp_path / "b",
                resume=True, **SETTINGS)  # fmt: skip

    assert res_a.step == res_b.step == 2 * K
    assert_same_training_state(straight, resumed)
    assert res_a.loss == res_b.loss
    assert losses(tmp_path / "a" / "metrics.jsonl") == losses(tmp_path / "b" / "metrics.jsonl")
    assert [s for s, _ in losses(tmp_path / "b" / "metrics.jsonl")] == list(range(1, 2 * K + 1))


def test_resume_drops_log_lines_after_the_checkpoint(tmp_path):
    m, o, e = build(0)
    fit(m, flow_loss, data(), steps=K, optimizer=o, ema=e, out_dir=tmp_path, **SETTINGS)
    log = tmp_path / "metrics.jsonl"
    with log.open("a") as f:  # steps logged after the checkpoint, then a torn line
        f.write(json.dumps({"step": K + 1, "loss": 0.0}) + "\n" + '{"step": ')
    m, o, e = build(1)
    fit(m, flow_loss, data(), steps=K + 2, optimizer=o, ema=e, out_dir=tmp_path, resume=True,
        **SETTINGS)  # fmt: skip
    assert [s for s, _ in losses(log)] == list(range(1, K + 3))


def test_resume_without_checkpoint_starts_fresh_and_mismatch_raises(tmp_path):
    m, o, _ = build(0)
    settings = {**SETTINGS, "checkpoint_every": None}
    res = fit(m, flow_loss, data(), steps=2, optimizer=o, out_dir=tmp_path, resume=True, **settings)
    assert res.step == 2 and res.checkpoint is not None and res.checkpoint.name == "step-00000002"
    m, o, _ = build(0)
    with pytest.raises(ValueError, match="batch_size=8, this call has batch_size=4"):
        fit(m, flow_loss, data(), steps=4, optimizer=o, out_dir=tmp_path, resume=True,
            **{**settings, "batch_size": 4})  # fmt: skip
    m, o, e = build(0)
    with pytest.raises(CheckpointError, match="no EMA state"):
        fit(m, flow_loss, data(), steps=4, optimizer=o, ema=e, out_dir=tmp_path, resume=True,
            **settings)  # fmt: skip


def test_keep_last_prunes_old_checkpoints(tmp_path):
    m, o, _ = build(0)
    fit(m, flow_loss, data(), steps=5, optimizer=o, out_dir=tmp_path, batch_size=8,
        checkpoint_every=1, keep_last=2, progress=False)  # fmt: skip
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step-00000004", "step-00000005"]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step-00000005"


def test_fit_is_seeded_and_leaves_global_rng_alone():
    results = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        m, o, _ = build(0)
        before = torch.get_rng_state()
        res = fit(m, flow_loss, data(), steps=3, optimizer=o, batch_size=8, seed=5,
                  progress=False)  # fmt: skip
        assert torch.equal(torch.get_rng_state(), before)
        results.append((res.loss, [p.clone() for p in m.parameters()]))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1], strict=True))


def test_dict_and_dataset_inputs_and_bf16():
    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return {"x": torch.full((2,), float(i)), "w": torch.tensor(1.0)}

    def loss(model, batch, generator):
        assert set(batch) == {"x", "w"} and batch["x"].shape == (4, 2)
        return model(batch["x"], torch.rand(4, generator=generator)).pow(2).mean()

    for source in (Pairs(), {"x": torch.randn(10, 2), "w": torch.ones(10)}):
        m, o, _ = build(0)
        res = fit(m, loss, source, steps=2, optimizer=o, batch_size=4, progress=False, bf16=True)
        assert res.step == 2 and res.loss is not None


def test_grad_accum_averages_micro_batches():
    # one step over 2 micro-batches of 4 == one step over the same 8 samples at once (linear
    # model, mean loss, plain SGD): the loop divides each micro-loss by grad_accum
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))

    def loss(model, batch, generator):
        return model(batch).pow(2).mean()

    a = nn.Linear(3, 1)
    b = nn.Linear(3, 1)
    b.load_state_dict(a.state_dict())
    fit(a, loss, x, steps=1, optimizer=torch.optim.SGD(a.parameters(), lr=0.1), batch_size=4,
        grad_accum=2, progress=False)  # fmt: skip
    opt = torch.optim.SGD(b.parameters(), lr=0.1)
    loss(b, x, None).backward()
    opt.step()
    torch.testing.assert_close(a.weight, b.weight)


def test_errors():
    m, o, _ = build(0)
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        fit(m, lambda model, b, g: torch.tensor(float("nan"), requires_grad=True), data(),
            steps=1, optimizer=o, batch_size=4, progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="scalar tensor"):
        fit(m, lambda model, b, g: model(b, torch.rand(4)), data(), steps=1, optimizer=o,
            batch_size=4, progress=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"`batch_size` must be in \[1, len\(data\)\]"):
        fit(m, flow_loss, data(), steps=1, optimizer=o, batch_size=100, progress=False)
    with pytest.raises(ValueError, match="needs `out_dir`"):
        fit(m, flow_loss, data(), steps=1, optimizer=o, batch_size=4, resume=True)
    with pytest.raises(TypeError, match="map-style dataset"):
        fit(m, flow_loss, iter([data()]), steps=1, optimizer=o, batch_size=4)


def test_warmup_cosine():
    sched = WarmupCosine(warmup=4, total=12, final=0.1)
    assert sched(0) == 0.0 and sched(2) == 0.5 and sched(4) == 1.0
    assert sched(8) == pytest.approx(0.55)
    assert sched(12) == pytest.approx(0.1) and sched(100) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="warmup <= total"):
        WarmupCosine(warmup=5, total=3)

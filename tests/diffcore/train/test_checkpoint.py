import json
import os
import re
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import nn

import diffcore.train as train
from diffcore.nets import DiT, UNet
from diffcore.train import (
    EMA,
    CheckpointError,
    atomic_write_bytes,
    from_pretrained,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    save_pretrained,
)
from diffcore.train import checkpoint as ckpt_mod


def test_all_names_import():
    for name in train.__all__:
        assert hasattr(train, name), name


def make(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ema = EMA(model, decay=0.9)
    return model, opt, ema


def train_a_bit(model, opt, ema, steps=3):
    for _ in range(steps):
        loss = model(torch.randn(5, 3)).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        ema.update(model)


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def saved(tmp_path):
    model, opt, ema = make(0)
    train_a_bit(model, opt, ema)
    gen = torch.Generator().manual_seed(7)
    gen_state = gen.get_state()
    path = save_checkpoint(
        tmp_path / "ck", model=model, step=3, optimizer=opt, ema=ema, generators={"noise": gen},
        config={"lr": 1e-2}, state={"epoch": 1},
    )  # fmt: skip
    return path, model, opt, ema, gen_state


def test_roundtrip(saved):
    path, model, opt, ema, gen_state = saved
    model2, opt2, ema2 = make(1)
    gen2 = torch.Generator().manual_seed(99)
    info = load_checkpoint(path, model=model2, optimizer=opt2, ema=ema2, generators={"noise": gen2})
    assert info.step == 3 and info.config == {"lr": 1e-2} and info.state == {"epoch": 1}
    assert states_equal(model.state_dict(), model2.state_dict())
    assert states_equal(ema.shadow, ema2.shadow) and ema2.num_updates == 3
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for i in s1["state"]:
        assert states_equal(s1["state"][i], s2["state"][i])
    assert torch.equal(gen2.get_state(), gen_state)


def test_never_unpickles(saved, monkeypatch):
    path, *_ = saved

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load / pickle must not be used")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr("pickle.load", forbidden)
    monkeypatch.setattr("pickle.loads", forbidden)
    model2, opt2, ema2 = make(1)
    load_checkpoint(path, model=model2, optimizer=opt2, ema=ema2)
    for module in (ckpt_mod, train.loop, train.ema):
        source = Path(module.__file__).read_text()
        assert re.search(r"(?<!safetensors\.)torch\.load\b", source) is None
        assert "import pickle" not in source


def test_restore_global_rng(saved):
    path, *_ = saved
    model2, _, _ = make(1)
    before = torch.get_rng_state()
    load_checkpoint(path, model=model2, restore_global_rng=True)
    saved_state = safetensors.torch.load_file(path / "rng.safetensors")["torch.cpu"]
    assert torch.equal(torch.get_rng_state(), saved_state)
    torch.set_rng_state(before)


def _corrupt_truncate(file: Path):
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def _corrupt_flip(file: Path):
    data = bytearray(file.read_bytes())
    data[-3] ^= 0xFF
    file.write_bytes(bytes(data))


def _corrupt_delete(file: Path):
    file.unlink()


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors",
                                  "ema.safetensors", "rng.safetensors"])  # fmt: skip
@pytest.mark.parametrize(
    ("corrupt", "words"),
    [(_corrupt_truncate, "truncated"), (_corrupt_flip, "corrupted"), (_corrupt_delete, "missing")],
    ids=["truncated", "flipped", "missing"],
)
def test_damaged_files_raise_checkpoint_error_naming_file(saved, name, corrupt, words):
    path, *_ = saved
    corrupt(path / name)
    model2, opt2, ema2 = make(1)
    before = {k: v.clone() for k, v in model2.state_dict().items()}
    with pytest.raises(CheckpointError, match=words) as info:
        load_checkpoint(path, model=model2, optimizer=opt2, ema=ema2)
    assert name in str(info.value)
    assert isinstance(info.value, ValueError)
    # nothing was modified
    assert states_equal(before, model2.state_dict())


def test_manifest_truncated_or_missing(saved):
    path, *_ = saved
    manifest = path / "checkpoint.json"
    manifest.write_text(manifest.read_text()[:40])
    with pytest.raises(CheckpointError, match=r"checkpoint\.json.*not valid JSON"):
        load_checkpoint(path, model=make(1)[0])
    manifest.unlink()
    with pytest.raises(CheckpointError, match=r"checkpoint\.json.*missing"):
        load_checkpoint(path, model=make(1)[0])
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(path.parent / "nope", model=make(1)[0])


def _rewrite_with_manifest(path: Path, name: str, tensors):
    """Replace a file *and* its manifest entry, so only the content check can object."""
    safetensors.torch.save_file(tensors, path / name)
    manifest = json.loads((path / "checkpoint.json").read_text())
    manifest["files"][name] = ckpt_mod._file_info(path / name)
    (path / "checkpoint.json").write_text(json.dumps(manifest))


def test_missing_key_raises_checkpoint_error(saved):
    path, *_ = saved
    tensors = safetensors.torch.load_file(path / "model.safetensors")
    del tensors["2.bias"]
    _rewrite_with_manifest(path, "model.safetensors", tensors)
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*missing keys \['2\.bias'\]"):
        load_checkpoint(path, model=make(1)[0])


def test_shape_mismatch_raises(saved):
    path, *_ = saved
    tensors = safetensors.torch.load_file(path / "model.safetensors")
    tensors["2.bias"] = torch.zeros(5)
    _rewrite_with_manifest(path, "model.safetensors", tensors)
    with pytest.raises(CheckpointError, match=r"'2\.bias' has shape \(5,\)"):
        load_checkpoint(path, model=make(1)[0])


def test_garbage_with_matching_hash_is_still_caught(saved):
    path, *_ = saved
    (path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    manifest = json.loads((path / "checkpoint.json").read_text())
    manifest["files"]["model.safetensors"] = ckpt_mod._file_info(path / "model.safetensors")
    (path / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*not a readable safetensors"):
        load_checkpoint(path, model=make(1)[0])


def test_wrong_model_or_optimizer(saved):
    path, *_ = saved
    other = nn.Linear(3, 2)
    with pytest.raises(CheckpointError, match="missing keys"):
        load_checkpoint(path, model=other)
    model2, _, _ = make(1)
    opt_two_groups = torch.optim.Adam(
        [{"params": [model2[0].weight]}, {"params": [p for n, p in model2.named_parameters()
                                                     if n != "0.weight"]}]
    )  # fmt: skip
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors.*parameter groups"):
        load_checkpoint(path, model=model2, optimizer=opt_two_groups)


def test_failed_save_leaves_old_checkpoint_and_no_partial_files(saved, monkeypatch):
    path, model, opt, ema, _ = saved
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    real_save = safetensors.torch.save_file
    calls = {"n": 0}

    def failing_save(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:  # the model file is written, the optimizer file fails midway
            Path(filename).write_bytes(b"partial")
            raise OSError("disk full (simulated)")
        return real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", failing_save)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, model=model, step=4, optimizer=opt, ema=ema)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["ck"]  # no temp leftovers
    calls["n"] = 0
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path.parent / "new", model=model, step=4, optimizer=opt)
    assert not (path.parent / "new").exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["ck"]


def test_atomic_write_bytes_failure_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"old")

    def failing_fsync(fd):
        raise OSError("fsync failed (simulated)")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated"):
        atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_resave_replaces_directory(saved):
    path, model, opt, ema, _ = saved
    save_checkpoint(path, model=model, step=9)
    assert load_checkpoint(path, model=make(1)[0]).step == 9
    assert sorted(p.name for p in path.parent.iterdir()) == ["ck"]
    with pytest.raises(CheckpointError, match="has no optimizer"):
        load_checkpoint(path, model=make(1)[0], optimizer=make(1)[1])


def test_latest_checkpoint(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    model, _, _ = make(0)
    for step in (2, 10, 7):
        save_checkpoint(tmp_path / f"step-{step:08d}", model=model, step=step)
    assert latest_checkpoint(tmp_path).name == "step-00000010"
    (tmp_path / "latest").write_text("step-00000007\n")
    assert latest_checkpoint(tmp_path).name == "step-00000007"
    (tmp_path / "latest").write_text("step-00000099\n")
    with pytest.raises(CheckpointError, match="step-00000099"):
        latest_checkpoint(tmp_path)


def test_tied_weights_are_saved():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    model[1].weight = model[0].weight
    tensors = ckpt_mod._prepare_tensors(model.state_dict(), Path("x"))
    assert torch.equal(tensors["0.weight"], tensors["1.weight"])


# ------------------------------------------------------------------------- pretrained


@pytest.mark.parametrize(
    "build",
    [
        lambda: UNet.from_preset("tiny", dims=1, num_classes=3, time_embedding="fourier",
                                 generator=torch.Generator().manual_seed(0)),
        lambda: DiT.from_preset("tiny", context_dim=4, generator=torch.Generator().manual_seed(0)),
    ],
    ids=["unet", "dit"],
)  # fmt: skip
def test_save_and_from_pretrained(tmp_path, build):
    model = build()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    save_pretrained(model, tmp_path / "m", model.config)
    loaded = from_pretrained(type(model), tmp_path / "m")
    assert loaded.config == model.config  # tuples come back as tuples
    assert not loaded.training
    assert states_equal(model.state_dict(), loaded.state_dict())
    assert all(not t.is_meta for t in loaded.state_dict().values())
    assert all(p.requires_grad for p in loaded.parameters())
    x = torch.randn(2, *((1, 8) if isinstance(model, UNet) else (1, 8, 8)))
    model.eval()
    torch.testing.assert_close(
        loaded(x, torch.rand(2).fill_(0.3)), model(x, torch.rand(2).fill_(0.3))
    )
    as64 = from_pretrained(type(model), tmp_path / "m", dtype=torch.float64)
    assert next(as64.parameters()).dtype == torch.float64


def test_from_pretrained_errors(tmp_path):
    model = UNet.from_preset("tiny", generator=torch.Generator().manual_seed(0))
    with pytest.raises(CheckpointError, match=r"config\.json.*missing"):
        from_pretrained(UNet, tmp_path / "m")
    save_pretrained(model, tmp_path / "m")
    with pytest.raises(CheckpointError, match="not 'DiT'"):
        from_pretrained(DiT, tmp_path / "m")
    _corrupt_truncate(tmp_path / "m" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*truncated"):
        from_pretrained(UNet, tmp_path / "m")
    save_pretrained(model, tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["config"]["model_chanels"] = cfg["config"].pop("model_channels")
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="did you mean 'model_channels'"):
        from_pretrained(UNet, tmp_path / "m")


class KwargsNet(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.lin = nn.Linear(width, width)


def test_pretrained_with_kwargs_config(tmp_path):
    net = KwargsNet(3)
    save_pretrained(net, tmp_path / "k", {"width": 3})
    loaded = from_pretrained(KwargsNet, tmp_path / "k")
    assert states_equal(net.state_dict(), loaded.state_dict())
    with pytest.raises(ValueError, match="`config` is required"):
        save_pretrained(net, tmp_path / "k2")

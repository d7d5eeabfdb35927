"""torch.distributed on CPU (gloo): 2 and 3 processes forked by the test.

One 2-rank job trains with DDP and with FSDP2 (+ gradient checkpointing) and samples; one
3-rank job samples. The references are single-process runs with the same global batch.
"""

import importlib
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from diffcore.distributed import (
    ShardedSampler,
    all_reduce_mean,
    derive_seed,
    epoch_permutation,
    init_from_env,
    load_parts,
    seeded_generator,
    shard_indices,
    split_sample,
)
from diffcore.nets import MLPDenoiser
from diffcore.processes import LinearVP
from diffcore.samplers import EulerMaruyama, sample_n, uniform_t
from diffcore.testing import GaussianData
from diffcore.train import EMA, fit, gradient_checkpointing

K = 3  # steps of the distributed runs; the resumed run goes to 2K
N_SAMPLES = 11
MICRO = 3  # 4 micro-batches: 2 ranks take 2 each, 3 ranks take 2/1/1
TOL = dict(rtol=1e-5, atol=1e-6)
LAUNCH_TIMEOUT_S = 180


def data():
    return torch.randn(37, 2, generator=torch.Generator().manual_seed(0))


def flow_loss(model, batch, generator):
    eps = torch.randn(batch.shape, generator=generator, device=batch.device)
    t = torch.rand(batch.shape[0], generator=generator, device=batch.device)
    x_t = (1 - t[:, None]) * batch + t[:, None] * eps
    return ((model(x_t, t) - (eps - batch)) ** 2).mean()


def build(init_seed):
    # dropout: the global RNG must be seeded per micro-batch, not per rank
    model = MLPDenoiser.from_preset(
        "tiny", dropout=0.2, generator=torch.Generator().manual_seed(init_seed)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, opt, EMA(model, decay=0.9)


# 8 samples per micro-batch, 4 micro-batches per epoch: steps cross epoch ends
SETTINGS = dict(batch_size=8, grad_clip=1.0, seed=7, progress=False, checkpoint_every=K)


def sampling_model():
    process = LinearVP()
    data = GaussianData.create(torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.5, 1.5, 0.1]))
    return data.denoiser(process, "eps"), uniform_t(process, 8, t_end=1e-3)


def draw_samples():
    model, grid = sampling_model()
    like = torch.empty(1, 3, dtype=torch.float64)
    with torch.no_grad():
        return sample_n(model, like, grid, EulerMaruyama(), N_SAMPLES, seed=3, micro_batch=MICRO)


def noise_tree(count, generator):
    return {
        "a": torch.randn(count, 2, generator=generator),
        "b": (torch.rand(count, generator=generator), torch.arange(count)),
    }


# ------------------------------------------------------------------------- the rank jobs


def job_train_and_sample(out: Path) -> None:
    rank = int(os.environ["RANK"])
    # ranks start from different weights: fit broadcasts rank 0's model and EMA
    m, o, e = build(0 if rank == 0 else 100)
    fit(m, flow_loss, data(), steps=K, optimizer=o, ema=e, out_dir=out / "ddp", **SETTINGS)
    assert dist.is_initialized() and dist.get_world_size() == 2  # joined from the env
    safetensors.torch.save_file(
        {**m.state_dict(), **{f"ema.{k}": v for k, v in e.shadow.items()}},
        out / f"ddp-rank{rank}.safetensors",
    )
    m, o, e = build(0 if rank == 0 else 100)
    fit(m, flow_loss, data(), steps=K, optimizer=o, ema=e, out_dir=out / "fsdp",
        parallel="fsdp", grad_checkpointing=True, **SETTINGS)  # fmt: skip
    assert type(m.out.weight).__name__ == "DTensor"  # the model stays sharded ...
    assert all(type(v) is torch.Tensor for v in e.shadow.values())  # ... the EMA is full again
    # a second call continues on the sharded model
    fit(m, flow_loss, data(), steps=1, optimizer=o, ema=e, batch_size=8, parallel="fsdp",
        progress=False)  # fmt: skip
    assert e.num_updates == K + 1
    job_sample(out)


def job_sample(out: Path) -> None:
    world = int(os.environ["WORLD_SIZE"])
    x = draw_samples()
    tree = split_sample(noise_tree, N_SAMPLES, seed=5, micro_batch=MICRO, gather="all",
                        device="cpu")  # fmt: skip
    split_sample(noise_tree, N_SAMPLES, seed=5, micro_batch=MICRO, gather="none",
                 out_dir=out / f"parts-{world}", device="cpu")  # fmt: skip
    mean = all_reduce_mean({"r": float(dist.get_rank()), "t": torch.ones(2) * dist.get_rank()})
    if dist.get_rank() == 0:
        safetensors.torch.save_file({"x": x}, out / f"samples-{world}.safetensors")
    else:
        assert x is None
    torch.testing.assert_close(tree, noise_tree_reference(), rtol=0, atol=0)
    assert mean["r"] == pytest.approx((world - 1) / 2)
    torch.testing.assert_close(mean["t"], torch.full((2,), (world - 1) / 2))


def noise_tree_reference():
    """What split_sample must return: micro-batch k drawn from a (5, k)-seeded generator."""
    parts = [noise_tree(min(MICRO, N_SAMPLES - k), seeded_generator(5, k // MICRO))
             for k in range(0, N_SAMPLES, MICRO)]  # fmt: skip
    return {
        "a": torch.cat([p["a"] for p in parts]),
        "b": tuple(torch.cat([p["b"][i] for p in parts]) for i in range(2)),
    }


JOBS = {"train_and_sample": job_train_and_sample, "sample": job_sample}


def _entry(rank, world, port, job, out):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
        LOCAL_RANK=str(rank),
    )  # fmt: skip
    torch.set_num_threads(1)
    try:
        JOBS[job](Path(out))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_method():
    # fork is ~10x cheaper than spawn (no re-import of torch per rank), but a forked child
    # cannot run autograd once the parent's autograd engine has started its accelerator
    # threads; with only a CPU there are none.
    accel = getattr(torch, "accelerator", None)
    has_accel = torch.cuda.is_available() or (accel is not None and accel.is_available())
    return "spawn" if has_accel else "fork"


def launch(world, job, out):
    """Start `world` ranks running JOBS[job]; fail on error or after LAUNCH_TIMEOUT_S."""
    method = _start_method()
    if method == "spawn":  # the ranks re-import this module by its name, tests.diffcore...
        root = str(Path(__file__).resolve().parents[2])
        if root not in sys.path:
            sys.path.insert(0, root)
    ctx = mp.start_processes(_entry, args=(world, _free_port(), job, str(out)), nprocs=world,
                             join=False, start_method=method)  # fmt: skip
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"{world}-rank job {job!r} did not finish in {LAUNCH_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    torch.set_num_threads(1)
    # The reference first: a single process with the same global batch (2 micro-batches per
    # step). It also imports what the ranks need (torch._dynamo via the optimizer, DTensor...)
    # once here rather than in every forked rank.
    m, o, e = build(0)
    fit(m, flow_loss, data(), steps=2 * K, optimizer=o, ema=e, out_dir=out / "single",
        grad_accum=2, **SETTINGS)  # fmt: skip
    importlib.import_module("torch.distributed.fsdp")
    importlib.import_module("torch.distributed.tensor")
    launch(2, "train_and_sample", out)
    launch(3, "sample", out)
    return out


def ckpt(out, run, step):
    path = out / run / "checkpoints" / f"step-{step:08d}"
    files = ("model", "ema", "optimizer")
    return {f: safetensors.torch.load_file(path / f"{f}.safetensors") for f in files}


def assert_close_dicts(a, b, **tol):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key, **(tol or TOL))


# ------------------------------------------------------------------------------- training


@pytest.mark.parametrize("run", ["ddp", "fsdp"])
def test_two_ranks_match_one_process_with_the_same_global_batch(runs, run):
    ref, got = ckpt(runs, "single", K), ckpt(runs, run, K)
    for part in ("model", "ema", "optimizer"):
        assert_close_dicts(got[part], ref[part])
    moved = ref["model"]["out.weight"] - build(0)[0].state_dict()["out.weight"]
    assert moved.abs().max() > 1e-3  # the comparison is not between untouched weights
    # the logged loss is the mean over ranks, i.e. the single-process mean
    log = [json.loads(line) for line in (runs / run / "metrics.jsonl").read_text().splitlines()]
    ref_log = (runs / "single" / "metrics.jsonl").read_text().splitlines()[:K]
    ref_loss = [json.loads(line)["loss"] for line in ref_log]
    assert [r["loss"] for r in log] == pytest.approx(ref_loss, rel=1e-5)


def test_ddp_ranks_end_identical_despite_different_inits(runs):
    r0 = safetensors.torch.load_file(runs / "ddp-rank0.safetensors")
    r1 = safetensors.torch.load_file(runs / "ddp-rank1.safetensors")
    assert_close_dicts(r0, r1, rtol=0, atol=0)
    saved = ckpt(runs, "ddp", K)
    assert_close_dicts({k: v for k, v in r0.items() if not k.startswith("ema.")},
                       saved["model"], rtol=0, atol=0)  # fmt: skip


def test_two_rank_checkpoint_resumes_on_one_rank(runs, tmp_path):
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(runs / "ddp", resumed_dir)
    m, o, e = build(123)  # "killed": rebuilt from scratch with another init
    with pytest.raises(ValueError, match="use grad_accum=2"):
        fit(m, flow_loss, data(), steps=2 * K, optimizer=o, ema=e, out_dir=resumed_dir,
            resume=True, **SETTINGS)  # fmt: skip
    res = fit(m, flow_loss, data(), steps=2 * K, optimizer=o, ema=e, out_dir=resumed_dir,
              resume=True, grad_accum=2, **SETTINGS)  # fmt: skip
    assert res.step == 2 * K
    got, ref = ckpt(resumed_dir.parent, "resumed", 2 * K), ckpt(runs, "single", 2 * K)
    for part in ("model", "ema", "optimizer"):
        assert_close_dicts(got[part], ref[part])
    manifest = json.loads((res.checkpoint / "checkpoint.json").read_text())
    assert manifest["ema"]["num_updates"] == 2 * K
    assert manifest["state"]["world_size"] == 1 and manifest["state"]["grad_accum"] == 2


def test_fit_gradient_checkpointing_is_exact_on_one_process():
    results = []
    for flag in (False, True):
        m, o, _ = build(0)
        fit(m, flow_loss, data(), steps=2, optimizer=o, batch_size=8, seed=1, progress=False,
            grad_checkpointing=flag)  # fmt: skip
        results.append(m.state_dict())
    assert_close_dicts(results[0], results[1], rtol=0, atol=1e-7)


def test_gradient_checkpointing_restores_the_model_and_names_missing_blocks():
    m, _, _ = build(0)
    with gradient_checkpointing(m) as blocks:
        assert len(blocks) == m.config.depth and all("forward" in b.__dict__ for b in blocks)
    assert not any("forward" in b.__dict__ for b in blocks)
    with pytest.raises(ValueError, match="no blocks to checkpoint"):
        with gradient_checkpointing(torch.nn.Linear(2, 2)):
            pass
    with pytest.raises(ValueError, match="`parallel` must be one of"):
        fit(m, flow_loss, data(), steps=1, optimizer=build(0)[1], batch_size=8,
            parallel="zero3", progress=False)  # fmt: skip


# ------------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("world", [2, 3])
def test_split_sampling_gives_the_same_samples_on_any_number_of_ranks(runs, world):
    one = draw_samples()  # this process: 1 rank
    many = safetensors.torch.load_file(runs / f"samples-{world}.safetensors")["x"]
    assert one.shape == (N_SAMPLES, 3)
    torch.testing.assert_close(many, one, rtol=0, atol=0)
    assert not torch.equal(one[:MICRO], one[MICRO : 2 * MICRO])  # micro-batches differ
    parts = load_parts(runs / f"parts-{world}")
    ref = noise_tree_reference()
    torch.testing.assert_close(parts, ref, rtol=0, atol=0)
    assert sorted(p.name for p in (runs / f"parts-{world}").iterdir()) == [
        f"part-{k:06d}.safetensors" for k in range(4)
    ]


def test_split_sample_errors(tmp_path):
    with pytest.raises(ValueError, match="returned 2 items for micro-batch 0, asked for 3"):
        split_sample(lambda c, g: torch.zeros(2), 5, seed=0, micro_batch=3, device="cpu")
    with pytest.raises(ValueError, match="`gather` must be one of"):
        split_sample(noise_tree, 5, seed=0, gather="rank1", device="cpu")
    split_sample(noise_tree, 5, seed=0, micro_batch=2, out_dir=tmp_path, device="cpu")
    (tmp_path / "part-000001.safetensors").unlink()
    with pytest.raises(ValueError, match=r"lacks parts \[1\]"):
        load_parts(tmp_path)


# ------------------------------------------------------------------------- data sharding


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("drop_last", [True, False])
def test_sharded_sampler_partitions_and_depends_only_on_seed_epoch_rank(world, drop_last):
    n = 23

    def order(seed, epoch, rank):
        s = ShardedSampler(n, seed=seed, rank=rank, world_size=world, drop_last=drop_last)
        s.set_epoch(epoch)
        out = list(s)
        assert len(out) == len(s)
        return out

    shards = [order(4, 2, r) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # equal shares, so ranks stay in step
    union = [i for s in shards for i in s]
    if drop_last:  # a partition of all but n % world items
        assert len(set(union)) == len(union) == n - n % world
    else:  # every item, padded by the fewest repeats
        assert set(union) == set(range(n)) and len(union) == -(-n // world) * world
    for r in range(world):
        assert order(4, 2, r) == shards[r]  # a function of (seed, epoch, rank) ...
        assert order(4, 3, r) != shards[r]  # ... that changes with the epoch
        assert order(5, 2, r) != shards[r]  # ... and the seed
    # the first b items of every rank together are the same global batch for every world
    # size with world * b fixed (here 6): positions 0..5 of the epoch's permutation
    b = 6 // world
    first = sorted(i for s in shards for i in s[:b])
    assert first == sorted(epoch_permutation(n, 4, 2)[:6].tolist())


def test_shard_indices_and_seeds():
    assert [list(shard_indices(7, rank=r, world_size=3)) for r in range(3)] == [
        [0, 3, 6], [1, 4], [2, 5],
    ]  # fmt: skip
    assert list(shard_indices(5)) == [0, 1, 2, 3, 4]  # one process: everything
    with pytest.raises(ValueError, match="need 0 <= rank < world_size"):
        shard_indices(5, rank=2, world_size=2)
    assert derive_seed(1, 2) == derive_seed(1, 2) != derive_seed(1, 3) != derive_seed(2, 2)
    assert all_reduce_mean(3.0) == 3.0  # not distributed: unchanged


def test_init_from_env_without_torchrun_variables(monkeypatch):
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_from_env() is False and not dist.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="RANK, MASTER_ADDR, MASTER_PORT not set"):
        init_from_env()

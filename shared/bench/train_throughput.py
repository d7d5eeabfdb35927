"""Training throughput of diffcore.train.fit on a DiT or U-Net: samples/s and peak memory.

Run alone (CUDA if present, else CPU):
    uv run python shared/bench/train_throughput.py --steps 5
or on the GPUs of one node (one process per GPU; DDP, or FSDP2 with --parallel fsdp):
    uv run torchrun --nproc-per-node 4 shared/bench/train_throughput.py --preset DiT-S/2 \
        --channels 4 --image-size 32 --batch-size 64

Each variant (plain, gradient checkpointing, bf16 autocast) trains a fresh network with
rectified-flow matching on random images: ``--warmup`` steps first (allocator, kernels), then
``--steps`` timed steps. Prints the device, torch version and world size, then per variant the
global samples/s, the peak memory (CUDA: the allocator's peak on rank 0; CPU: the process's
peak resident set, which only grows across variants) and both as ratios to the plain run.
Rank 0 writes bench-results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

from diffcore import distributed
from diffcore.nets import DIT_PRESETS, UNET_PRESETS, DiT, UNet
from diffcore.objectives import FlowMatching
from diffcore.processes import RectifiedFlow
from diffcore.train import fit

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench-results" / "train_throughput.json"
VARIANTS = {
    "plain": {},
    "grad-ckpt": {"grad_checkpointing": True},
    "bf16": {"bf16": True},
}
_KIB = 1024  # ru_maxrss is in KiB on Linux
_MIB = 1024**2


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", choices=("dit", "unet"), default="dit")
    p.add_argument("--preset", default="tiny", help="a DIT_PRESETS / UNET_PRESETS name")
    p.add_argument("--channels", type=int, default=None, help="image channels (preset's)")
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8, help="per rank and micro-batch")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--steps", type=int, default=10, help="timed optimizer steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    p.add_argument("--parallel", choices=("ddp", "fsdp"), default="ddp")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    if args.steps < 1 or args.warmup < 0:
        p.error("need --steps >= 1 and --warmup >= 0")
    return args


def build(args: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    cls = DiT if args.net == "dit" else UNet
    overrides = {"in_channels": args.channels} if args.channels else {}
    if args.net == "unet":
        overrides["dims"] = 2
    else:  # predict a velocity of the input's shape (DiT's ImageNet presets learn a variance)
        overrides["out_channels"] = None
    gen = torch.Generator().manual_seed(args.seed)
    return cls.from_preset(args.preset, generator=gen, **overrides).to(device)


def run_variant(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    net = build(args, device)
    channels = net.config.in_channels
    world = distributed.world_size()
    n = args.batch_size * args.grad_accum * world * 4
    images = torch.randn(
        n, channels, args.image_size, args.image_size, generator=torch.Generator().manual_seed(1)
    )
    objective = FlowMatching(RectifiedFlow())

    def loss(model, batch, generator):
        return objective.loss(model, batch, generator=generator)

    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    common = dict(
        optimizer=opt,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        parallel=args.parallel,
        seed=args.seed,
        device=device,
        progress=False,
        **VARIANTS[name],
    )
    if args.warmup:
        fit(net, loss, images, steps=args.warmup, **common)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    distributed.barrier()
    t0 = time.perf_counter()
    fit(net, loss, images, steps=args.steps, **common)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / _MIB
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _KIB / _MIB
    samples = args.steps * args.batch_size * args.grad_accum * world
    return {"samples_per_s": samples / seconds, "peak_mib": peak, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    device = distributed.local_device()
    distributed.init_from_env(device=device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads() // distributed.world_size()))
    main_rank = distributed.is_main()
    presets = DIT_PRESETS if args.net == "dit" else UNET_PRESETS
    if args.preset not in presets:
        raise SystemExit(f"unknown --preset {args.preset!r}; known: {', '.join(presets)}")
    channels = args.channels or presets[args.preset].in_channels
    header = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "world_size": distributed.world_size(),
        "net": f"{args.net}:{args.preset}",
        "image": [channels, args.image_size, args.image_size],
        "batch_per_rank": args.batch_size * args.grad_accum,
        "steps": args.steps,
        "parallel": args.parallel if distributed.world_size() > 1 else None,
    }
    if main_rank:
        print(json.dumps(header))
    results = {}
    for name in args.variants.split(","):
        results[name] = run_variant(name, args, device)
    if main_rank:
        base = results.get("plain")
        print(f"{'variant':<10} {'samples/s':>10} {'peak MiB':>9} {'speed':>7} {'memory':>7}")
        for name, r in results.items():
            speed = r["samples_per_s"] / base["samples_per_s"] if base else float("nan")
            memory = r["peak_mib"] / base["peak_mib"] if base else float("nan")
            r.update(speed_vs_plain=speed, memory_vs_plain=memory)
            print(
                f"{name:<10} {r['samples_per_s']:>10.1f} {r['peak_mib']:>9.0f} "
                f"{speed:>6.2f}x {memory:>6.2f}x"
            )
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps({**header, "results": results}, indent=2) + "\n")
    distributed.barrier()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

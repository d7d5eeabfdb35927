"""GDSS on CPU, community-small: training time per epoch and sampling time per graph.

    nice uv run python shared/bench/gdss_speed.py [--config community-small] [--threads 1]

Trains a few epochs of the preset's networks on the built-in generated community-small set
(80 training graphs, GDSS batch 128 -> one optimizer step per epoch), then samples a batch with
each of the paper's samplers for a few steps and scales to GDSS's 1000 steps. Prints the
device, torch version, seconds, and ratios (S4 / PC, and the quick preset / paper preset).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from difflab.science import gdss


def measure(name: str, epochs: int, steps: int, n: int) -> dict[str, float]:  # noqa: D103
    cfg = gdss.get_config(name)
    data = gdss.load_data(cfg)
    model = gdss.GDSS(cfg)
    model.fit(data.train, epochs=1, progress=False)  # warm-up
    t0 = time.perf_counter()
    model.fit(data.train, epochs=epochs, progress=False)
    per_epoch = (time.perf_counter() - t0) / epochs
    out = {"train_s_per_epoch": per_epoch}
    for sampler, corr in (("euler", True), ("s4", False)):
        model.config = gdss.get_config(name, corrector=corr)
        s = model.sample(n, sampler=sampler, steps=steps, progress=False,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
        out[f"{sampler}_s_per_graph_1000_steps"] = s.seconds / n * 1000 / steps
    return out


def main() -> None:  # noqa: D103
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="sampling steps measured")
    p.add_argument("--n", type=int, default=20, help="graphs per sampling batch")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"device: cpu ({platform.processor() or platform.machine()}), threads {a.threads}, "
          f"torch {torch.__version__}")  # fmt: skip
    res = {}
    for name in ("community-small", "community-small-quick"):
        res[name] = measure(name, a.epochs, a.steps, a.n)
        print(name, {k: round(v, 4) for k, v in res[name].items()})
    paper, quick = res["community-small"], res["community-small-quick"]
    key_pc, key_s4 = "euler_s_per_graph_1000_steps", "s4_s_per_graph_1000_steps"
    print(f"paper preset: S4 / PC(Euler+Langevin) time per graph = "
          f"{paper[key_s4] / paper[key_pc]:.2f}")  # fmt: skip
    train_ratio = quick["train_s_per_epoch"] / paper["train_s_per_epoch"]
    print(f"quick / paper preset: train per epoch {train_ratio:.2f}, "
          f"PC per graph {quick[key_pc] / paper[key_pc]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

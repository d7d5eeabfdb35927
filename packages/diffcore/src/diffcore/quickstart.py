"""The ``difflab quickstart`` command.

``difflab quickstart``: train a small flow on a 2-D density, sample it with several solvers,
and report distances to held-out data and the test NLL.

The whole path is diffcore parts: ``RectifiedFlow`` + ``FlowMatching`` (logit-normal times),
``MLPDenoiser`` trained with ``train.fit`` (EMA, checkpoints), then ``sample`` with Euler,
Heun, DPM-Solver++(2M) and adaptive Dormand-Prince, ``metrics.mmd`` /
``sliced_wasserstein`` and ``likelihood.log_likelihood``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from .cli import core_command


def run(
    out: str | Path,
    *,
    dataset: str = "moons",
    steps: int = 3000,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train, sample, evaluate; write ``metrics.json`` and ``samples.png`` into ``out``."""
    from .datasets import toy_2d
    from .likelihood import log_likelihood
    from .metrics import mmd, sliced_wasserstein
    from .nets import MLPDenoiser
    from .objectives import FlowMatching, LogitNormalTime
    from .predictions import Denoiser
    from .processes import RectifiedFlow
    from .samplers import DormandPrince, DPMSolverPP2M, Euler, Heun, sample, uniform_t
    from .train import EMA, fit

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    train = toy_2d(dataset, 20000, generator=g)
    test = toy_2d(dataset, 2000, generator=g)
    test2 = toy_2d(dataset, 2000, generator=g)  # a second held-out set: the noise floor

    process = RectifiedFlow()
    objective = FlowMatching(process, LogitNormalTime())
    net = MLPDenoiser.from_preset(
        "tiny", hidden=128, depth=3, generator=torch.Generator().manual_seed(seed)
    )
    ema = EMA(net, decay=0.999)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    fit(
        net,
        lambda model, batch, gen: objective.loss(model, batch, generator=gen),
        train,
        steps=steps,
        optimizer=optimizer,
        batch_size=batch_size,
        ema=ema,
        seed=seed,
        out_dir=out,
        progress=progress,
    )
    train_seconds = time.perf_counter() - t0
    ema.copy_to(net)
    net.eval()
    model = Denoiser(net, "velocity", process)

    results: dict[str, Any] = {
        "dataset": dataset,
        "train_steps": steps,
        "train_seconds": train_seconds,
    }
    prior = process.prior_sample(
        torch.empty(2000, 2), generator=torch.Generator().manual_seed(seed + 1)
    )
    solvers = {
        "euler-100": (Euler(), uniform_t(process, 100)),
        "heun-10": (Heun(), uniform_t(process, 10)),
        "dpm++2m-10": (DPMSolverPP2M(), uniform_t(process, 10, t_start=0.999)),
        "dopri5": (DormandPrince(rtol=1e-4, atol=1e-4), uniform_t(process, 1)),
    }
    samples = {}
    with torch.no_grad():
        for name, (rule, grid) in solvers.items():
            res = sample(model, prior, grid, rule, progress=False)
            samples[name] = res.x
            results[name] = {
                "nfe": res.nfe,
                "mmd": float(mmd(res.x, test)),
                "sliced_w2": float(
                    sliced_wasserstein(res.x, test, generator=torch.Generator().manual_seed(0))
                ),
            }
    results["data_floor"] = {
        "mmd": float(mmd(test2, test)),
        "sliced_w2": float(
            sliced_wasserstein(test2, test, generator=torch.Generator().manual_seed(0))
        ),
    }
    nll = log_likelihood(model, test[:500], steps=50)
    results["test_nll_nats"] = float(-nll.log_prob.mean())
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    _plot(test, samples, out / "samples.png", dataset)
    return results


def _plot(data: torch.Tensor, samples: dict[str, torch.Tensor], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"held-out data": data, **samples}
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3 * len(panels), 3.2), sharex=True, sharey=True
    )
    for ax, (name, pts) in zip(axes, panels.items(), strict=True):
        ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.5)
        ax.set_title(name, fontsize=9)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
    fig.suptitle(f"difflab quickstart: rectified flow on {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@core_command
def _register(subparsers: argparse._SubParsersAction) -> None:
    from .datasets import TOY_DATASETS

    parser = subparsers.add_parser(
        "quickstart",
        help="train a small flow on a 2-D density and evaluate it (about 1-2 minutes on CPU)",
    )
    parser.add_argument("--out", default="runs/quickstart", help="output folder")
    parser.add_argument("--dataset", default="moons", choices=TOY_DATASETS)
    parser.add_argument("--steps", type=int, default=3000, help="training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")

    def _run(args: argparse.Namespace) -> int:
        res = run(
            args.out,
            dataset=args.dataset,
            steps=args.steps,
            seed=args.seed,
            progress=not args.no_progress,
        )
        print(json.dumps(res, indent=2))
        print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'samples.png'}")
        return 0

    parser.set_defaults(func=_run)

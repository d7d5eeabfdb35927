"""The ``difflab physics`` command group, added through the ``difflab.commands`` entry point.

Commands::

    difflab physics ks generate --out DIR [--n-train N --n-valid N --n-test N] [--quick]
    difflab physics pde-refiner train    --data DIR --out DIR [--preset quick] [--method mse]
    difflab physics pde-refiner rollout  --data DIR --out DIR [--members E]
    difflab physics pde-refiner evaluate --data DIR --out DIR [--members E]

``lpinn`` is added by `difflab.physics.lpinn.cli.register_lpinn` when that module exists.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "PDE surrogates (PDE-Refiner, Text2PDE, LPINNs)"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``difflab physics ...`` to the top-level parser."""
    parser = subparsers.add_parser("physics", help=HELP, description=f"difflab physics: {HELP}.")

    def _print_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=_print_help)
    sub = parser.add_subparsers(title="commands", dest="physics_command", metavar="COMMAND")
    _register_ks(sub)
    _register_pde_refiner(sub)
    try:  # owned by the LPINN work; optional so both can land independently
        from .lpinn.cli import register_lpinn
    except ImportError:
        pass
    else:
        register_lpinn(sub)


# ------------------------------------------------------------------------------------- ks
def _register_ks(sub: argparse._SubParsersAction) -> None:
    ks = sub.add_parser("ks", help="Kuramoto-Sivashinsky data (ETDRK4 reference solver)")
    ks_sub = ks.add_subparsers(title="commands", dest="ks_command", metavar="COMMAND")
    ks.set_defaults(func=lambda a: (ks.print_help(), 0)[1])
    gen = ks_sub.add_parser("generate", help="generate train/valid/test trajectories into a folder")
    gen.add_argument("--out", required=True, type=Path, help="dataset folder")
    gen.add_argument(
        "--n-train", type=int, default=2048, help="training trajectories (paper: 2048)"
    )
    gen.add_argument("--n-valid", type=int, default=128, help="validation trajectories")
    gen.add_argument("--n-test", type=int, default=128, help="test trajectories")
    gen.add_argument(
        "--quick",
        action="store_true",
        help="short burn-in and trajectories; small counts by default",
    )
    gen.add_argument(
        "--n-steps", type=int, default=None, help="saved steps per trajectory (default 140)"
    )
    gen.add_argument(
        "--eval-steps",
        type=int,
        default=None,
        help="saved steps of the valid/test trajectories (default 640 as in PDE-Refiner; "
        "--quick: --n-steps)",
    )
    gen.add_argument(
        "--burn-in", type=int, default=None, help="discarded steps of dt (default 360)"
    )
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    gen.add_argument("--batch-size", type=int, default=64)
    gen.add_argument("--no-progress", action="store_true")
    gen.set_defaults(func=_ks_generate)


def _ks_generate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .datasets import generate_ks_dataset
    from .solvers.ks import KS_PRESETS, PAPER_EVAL_STEPS

    cfg = KS_PRESETS["quick" if args.quick else "pde-refiner"]
    if args.n_steps is not None:
        cfg = replace(cfg, n_steps=args.n_steps)
    if args.burn_in is not None:
        cfg = replace(cfg, burn_in=args.burn_in)
    sizes = (args.n_train, args.n_valid, args.n_test)
    if args.quick and sizes == (2048, 128, 128):
        sizes = (16, 4, 4)
    eval_steps = args.eval_steps
    if eval_steps is None and not args.quick:
        eval_steps = PAPER_EVAL_STEPS
    meta = generate_ks_dataset(
        args.out,
        sizes,
        cfg,
        seed=args.seed,
        eval_steps=eval_steps,
        device=args.device,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    print(json.dumps({"out": str(args.out), "sizes": meta["sizes"]}))
    return 0


# ------------------------------------------------------------------------------ pde-refiner
def _register_pde_refiner(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("pde-refiner", help="PDE-Refiner and the MSE U-Net baseline on KS")
    pr.set_defaults(func=lambda a: (pr.print_help(), 0)[1])
    pr_sub = pr.add_subparsers(title="commands", dest="pde_refiner_command", metavar="COMMAND")
    for name, fn, text in (
        ("train", _pr_train, "train on DATA's train split; the model goes to OUT/model"),
        ("rollout", _pr_rollout, "roll out a trained model on DATA's test split, save plots"),
        ("evaluate", _pr_evaluate, "correlation times, MSEs and plots on DATA's test split"),
    ):
        p = pr_sub.add_parser(name, help=text)
        p.add_argument("--data", required=True, type=Path, help="dataset folder (ks generate)")
        p.add_argument("--out", required=True, type=Path, help="run folder")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default=None)
        p.add_argument("--no-progress", action="store_true")
        if name == "train":
            p.add_argument("--preset", default="paper", help="paper | quick | cpu")
            p.add_argument("--method", choices=("refiner", "mse"), default="refiner")
            p.add_argument("--steps", type=int, default=None, help="override training steps")
            p.add_argument(
                "--max-train", type=int, default=None, help="use the first N trajectories"
            )
        else:
            p.add_argument(
                "--model", type=Path, default=None, help="run folder of `train` (default: OUT)"
            )
            p.add_argument("--split", default="test", choices=("train", "valid", "test"))
            p.add_argument("--members", type=int, default=0, help="ensemble size (refiner)")
            p.add_argument("--max-trajectories", type=int, default=None)
            p.add_argument(
                "--preset", default=None, help="ignored (the model folder holds its config)"
            )
        p.set_defaults(func=fn)


def _pr_train(args: argparse.Namespace) -> int:
    from .pde_refiner import get_preset, train

    overrides: dict = {"method": args.method}
    if args.steps is not None:
        overrides["steps"] = args.steps
    cfg = get_preset(args.preset, **overrides)
    train(
        cfg,
        args.data,
        args.out,
        seed=args.seed,
        device=args.device,
        max_train=args.max_train,
        progress=not args.no_progress,
    )
    print(json.dumps({"model": str(args.out / "model")}))
    return 0


def _load(args: argparse.Namespace):  # noqa: ANN202
    from dataclasses import replace

    from .datasets import load_ks
    from .pde_refiner import load_model

    model = load_model(args.model or args.out, device=args.device)
    data = load_ks(args.data, args.split)
    if args.max_trajectories is not None:
        n = args.max_trajectories
        data = replace(data, u=data.u[:n], length=data.length[:n], index=data.index[:n])
    return model, data


def _pr_rollout(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from .pde_refiner import plot_rollout, rollout

    model, data = _load(args)
    members = max(args.members, 1)
    pred = rollout(model, data, members=members, seed=args.seed, progress=not args.no_progress)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({"prediction": pred.contiguous()}, str(args.out / "rollout.safetensors"))
    first = pred if members == 1 else pred[0]
    h = model.config.history
    plot_rollout(
        data.u[0, h:].float(),
        first[0],
        data.dt,
        args.out / "rollout.png",
        title=model.config.method,
    )
    print(json.dumps({"rollout": str(args.out / "rollout.safetensors"), "shape": list(pred.shape)}))
    return 0


def _pr_evaluate(args: argparse.Namespace) -> int:
    from .pde_refiner import evaluate

    model, data = _load(args)
    summary = evaluate(
        model,
        data,
        seed=args.seed,
        members=args.members,
        out_dir=args.out,
        progress=not args.no_progress,
    )
    print(json.dumps(summary, indent=2))
    return 0

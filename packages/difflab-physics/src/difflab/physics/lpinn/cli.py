"""``difflab physics lpinn``: train an LPINN and the Eulerian PINN, write metrics and a figure."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register_lpinn"]


def register_lpinn(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``lpinn`` command to the ``difflab physics`` sub-parsers."""
    parser = subparsers.add_parser(
        "lpinn",
        help="Lagrangian PINN vs Eulerian PINN on convection or Burgers",
        description="Train a Lagrangian PINN (Mojgani et al. 2022) and an Eulerian PINN with the "
        "same budget; print and write their relative L2 errors (metrics.json) and a figure.",
    )
    parser.add_argument("--equation", choices=["convection", "burgers"], default="convection")
    parser.add_argument("--beta", type=float, default=30.0, help="convection speed (default 30)")
    parser.add_argument("--nu", type=float, default=None, help="diffusivity (default: preset)")
    parser.add_argument("--quick", action="store_true", help="tiny networks and budget (smoke)")
    parser.add_argument("--adam-steps", type=int, default=None)
    parser.add_argument("--lbfgs-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=_run)
    return parser


def _run(args: argparse.Namespace) -> int:
    from .pipeline import compare, get_config, plot_comparison, write_metrics

    overrides: dict[str, object] = {"beta": args.beta, "seed": args.seed}
    if args.nu is not None:
        overrides["nu"] = args.nu
    if args.adam_steps is not None:
        overrides["adam_steps"] = args.adam_steps
    if args.lbfgs_steps is not None:
        overrides["lbfgs_steps"] = args.lbfgs_steps
    try:
        config = get_config(args.equation, quick=args.quick, **overrides)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = compare(config, progress=not args.no_progress)
    args.out.mkdir(parents=True, exist_ok=True)
    write_metrics(result, args.out / "metrics.json")
    plot_comparison(result, args.out / "solution.png")
    what = f"beta={config.beta:g}" if config.equation == "convection" else "Burgers"
    print(
        f"{config.equation} ({what}): relative L2  LPINN {result.lpinn.rel_l2:.3e}  "
        f"PINN {result.pinn.rel_l2:.3e}"
    )
    print(f"wrote {args.out / 'metrics.json'} and {args.out / 'solution.png'}")
    return 0

"""``difflab science gdss train|sample|evaluate|svdd``.

Each command reads ``--config`` (a preset, e.g. ``community-small-quick``) and works in
``--out``: ``train`` writes ``train/checkpoints/`` (safetensors, via diffcore.train) and the
final model in ``model/``; ``sample`` writes ``samples.safetensors`` plus ``samples.json``
(graphs) or ``samples.smi`` (molecules); ``evaluate`` writes ``metrics.json`` (graph MMDs or
molecule metrics). Without ``--data-dir`` community-small uses a seeded generated set.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import PRESETS, get_config

__all__ = ["register"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help=f"preset: {', '.join(PRESETS)}")
    p.add_argument("--data-dir", default=None, help="dataset folder (graph JSON or QM9 CSV)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--seed", type=int, default=None, help="default: the preset's seed")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``gdss`` to the ``difflab science`` sub-parsers."""
    gd = subparsers.add_parser("gdss", help="GDSS graph / molecule generation (Jo et al. 2022)")
    sub = gd.add_subparsers(title="commands", dest="gdss_command", metavar="COMMAND")
    gd.set_defaults(func=lambda a: (gd.print_help(), 0)[1])

    tr = sub.add_parser("train", help="train and save the model")
    _common(tr)
    tr.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    tr.add_argument("--checkpoint-every", type=int, default=None)
    tr.set_defaults(func=_train)

    sa = sub.add_parser("sample", help="sample from a trained model")
    _common(sa)
    sa.add_argument("--n", type=int, default=None, help="graphs (default: preset / test size)")
    sa.add_argument("--sampler", choices=["euler", "reverse", "s4"], default=None)
    sa.add_argument("--steps", type=int, default=None)
    sa.set_defaults(func=_sample)

    ev = sub.add_parser("evaluate", help="score samples; writes metrics.json")
    _common(ev)
    ev.add_argument("--no-fcd", action="store_true", help="molecules: skip FCD")
    ev.set_defaults(func=_evaluate)

    sv = sub.add_parser("svdd", help="molecules: SVDD-guided vs unguided (QED, optional SA)")
    _common(sv)
    sv.add_argument("--n", type=int, default=64)
    sv.add_argument("--candidates", type=int, default=8)
    sv.add_argument("--alpha", type=float, default=0.0)
    sv.add_argument("--sa-weight", type=float, default=0.0)
    sv.add_argument("--steps", type=int, default=None)
    sv.set_defaults(func=_svdd)


def _setup(args: argparse.Namespace):
    from .pipeline import load_data

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = get_config(args.config)
    seed = cfg.seed if args.seed is None else args.seed
    data = load_data(cfg, args.data_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return cfg, seed, data, out


def _load_model(out: Path, device: str):
    from .pipeline import GDSS

    path = out / "model"
    if not (path / "gdss.json").is_file():
        raise SystemExit(f"no trained model in {str(path)!r}; run `difflab science gdss train`")
    return GDSS.load(path, device=device)


def _train(args: argparse.Namespace) -> int:
    from .pipeline import GDSS

    cfg, seed, data, out = _setup(args)
    model = GDSS(cfg)
    model.atom_types = data.atom_types
    t0 = time.perf_counter()
    res = model.fit(
        data.train, epochs=args.epochs, out_dir=out / "train", seed=seed,
        progress=not args.no_progress, checkpoint_every=args.checkpoint_every, device=args.device,
    )  # fmt: skip
    model.save(out / "model")
    info = {"steps": res.step, "loss": res.loss, "seconds": round(time.perf_counter() - t0, 2)}
    (out / "train.json").write_text(json.dumps(info, indent=2))
    print(f"trained {cfg.name}: {res.step} steps, loss {res.loss:.4g}; model in {out / 'model'}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from ..graphs import save_graph_json
    from ..molecules import InvalidMoleculeError, graph_to_smiles

    cfg, seed, data, out = _setup(args)
    model = _load_model(out, args.device)
    n = args.n or cfg.num_samples or len(data.test_graphs or []) or 64
    s = model.sample(
        n, sampler=args.sampler, steps=args.steps,
        generator=torch.Generator().manual_seed(seed), progress=not args.no_progress,
    )  # fmt: skip
    tensors = {"x": s.x.contiguous(), "adj": s.adj.contiguous(), "mask": s.mask.contiguous()}
    save_file(tensors, str(out / "samples.safetensors"))
    if cfg.is_molecule:
        lines = []
        for g in s.molecules(model.atom_types or ()):
            try:
                lines.append(graph_to_smiles(g))
            except (InvalidMoleculeError, ValueError):
                lines.append("INVALID")
        (out / "samples.smi").write_text("\n".join(lines) + "\n")
    else:
        save_graph_json(s.graphs(), out / "samples.json", name=f"gdss-{cfg.name}")
    info = {"n": n, "seconds": round(s.seconds, 2), "seconds_per_graph": s.seconds / n}
    (out / "sample.json").write_text(json.dumps(info, indent=2))
    print(f"sampled {n} in {s.seconds:.1f}s ({s.seconds / n:.3f}s per graph) -> {out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .pipeline import GDSSSamples, evaluate

    cfg, _, data, out = _setup(args)
    path = out / "samples.safetensors"
    if not path.is_file():
        raise SystemExit(f"no samples at {str(path)!r}; run `difflab science gdss sample`")
    t = load_file(str(path))
    s = GDSSSamples(x=t["x"], adj=t["adj"], mask=t["mask"].bool())
    if cfg.is_molecule:
        model = _load_model(out, args.device)
        metrics = evaluate(
            s.molecules(model.atom_types or ()), train_smiles=data.train_smiles,
            test_smiles=data.test_smiles, fcd=not args.no_fcd,
        )  # fmt: skip
    else:
        metrics = evaluate(s.graphs(), reference=data.test_graphs)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    return 0


def _svdd(args: argparse.Namespace) -> int:
    from .svdd import svdd_compare

    cfg, seed, _, out = _setup(args)
    if not cfg.is_molecule:
        raise SystemExit(f"svdd needs a molecule preset (qm9, zinc250k), got {cfg.name!r}")
    model = _load_model(out, args.device)
    rep = svdd_compare(
        model, args.n, n_candidates=args.candidates, alpha=args.alpha, sa_weight=args.sa_weight,
        steps=args.steps, seed=seed, progress=not args.no_progress,
    )  # fmt: skip
    (out / "svdd.json").write_text(json.dumps(rep.as_dict(), indent=2))
    print(json.dumps(rep.as_dict(), indent=2))
    return 0

"""GDSS reproduction runs at a CPU budget: community-small (graph MMDs) or QM9 (molecule metrics).

    nice uv run python shared/bench/gdss_reproduce.py community-small --epochs 600 --out runs/cs
    nice uv run python shared/bench/gdss_reproduce.py qm9 --epochs 2 --train-limit 51200 \
        --batch-size 256 --steps 200 --samples 500 --test-limit 5000 --out runs/qm9

Data: /work/shared/data (graphs/community_small.json; qm9/qm9_gdb17.csv and
gdss_test_split.json). Paper (Jo et al. 2022, Tables 1 and 3): community-small degree / cluster
/ orbit MMD 0.045 / 0.086 / 0.007; QM9 validity w/o correction 95.72 %, uniqueness 98.46 %,
novelty 86.27 %, NSPDK 0.003, FCD 2.900.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from difflab.science import gdss

DATA = Path("/work/shared/data")
PAPER = {
    "community-small": {"degree": 0.045, "cluster": 0.086, "orbit": 0.007},
    "qm9": {
        "validity_wo_correction": 0.9572, "uniqueness": 0.9846, "novelty": 0.8627,
        "nspdk": 0.003, "fcd": 2.900,
    },
}  # fmt: skip


def main() -> None:  # noqa: D103
    p = argparse.ArgumentParser()
    p.add_argument("dataset", choices=["community-small", "qm9"])
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="sampling steps")
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=None, help="QM9: score vs this many test")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/gdss-repro")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    over = {k: v for k, v in {"epochs": a.epochs, "steps": a.steps, "train_limit": a.train_limit,
            "batch_size": a.batch_size}.items() if v is not None}  # fmt: skip
    cfg = gdss.get_config(a.dataset, **over)
    root = DATA / ("graphs" if a.dataset == "community-small" else "qm9")
    t0 = time.perf_counter()
    data = gdss.load_data(cfg, root)
    t_data = time.perf_counter() - t0
    model = gdss.GDSS(cfg)
    model.atom_types = data.atom_types
    t0 = time.perf_counter()
    res = model.fit(data.train, out_dir=Path(a.out) / "train", seed=cfg.seed, progress=False)
    t_train = time.perf_counter() - t0
    model.save(Path(a.out) / "model")
    n = a.samples or cfg.num_samples or len(data.test_graphs or [])
    s = model.sample(n, generator=torch.Generator().manual_seed(cfg.seed), progress=False)
    if cfg.is_molecule:
        test = data.test_smiles[: a.test_limit] if a.test_limit else data.test_smiles
        metrics = gdss.evaluate(s.molecules(data.atom_types), train_smiles=data.train_smiles,
                                test_smiles=test)  # fmt: skip
    else:
        metrics = gdss.evaluate(s.graphs(), reference=data.test_graphs)
    report = {
        "dataset": a.dataset, "config": cfg.to_dict(), "train_graphs": len(data.train),
        "optimizer_steps": res.step, "final_loss": res.loss, "data_s": round(t_data, 1),
        "train_s": round(t_train, 1), "sample_s": round(s.seconds, 1), "samples": n,
        "test_limit": a.test_limit,
        "metrics": metrics, "paper": PAPER[a.dataset], "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(), "threads": a.threads,
    }  # fmt: skip
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "config"}, indent=2))


if __name__ == "__main__":
    main()

"""PDE trajectory datasets in a local folder: one ``.npz`` file per split and rank.

Layout of a dataset folder::

    meta.json                      generator settings, seed, sizes per split
    train-part-00000.npz ...       u (B, T, N) float32, length (B,), index (B,), dt, nu

Each rank of a `diffcore.distributed` job writes the part named after its rank; `load_ks`
concatenates the parts of a split and orders the trajectories by their global index, so the
loaded dataset does not depend on how many ranks generated it. (``.npz`` is used because h5py
is not a dependency of difflab-physics.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffcore.distributed import barrier, rank, shard_indices, world_size

from .solvers.ks import KSConfig, KSTrajectories, generate_ks

__all__ = ["SPLITS", "generate_ks_dataset", "load_ks", "save_ks"]

SPLITS = ("train", "valid", "test")
_PART = "{split}-part-{rank:05d}.npz"


def save_ks(directory: str | Path, split: str, data: KSTrajectories, *, part: int = 0) -> Path:
    """Write one part of a split (u stored as float32).

    Returns:
        The written file.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    path = Path(directory) / _PART.format(split=split, rank=part)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        u=data.u.detach().cpu().to(torch.float32).numpy(),
        length=data.length.detach().cpu().to(torch.float64).numpy(),
        index=data.index.detach().cpu().numpy(),
        dt=np.float64(data.dt),
        nu=np.float64(data.nu),
    )
    tmp.replace(path)
    return path


def load_ks(directory: str | Path, split: str) -> KSTrajectories:
    """Read a split written by `save_ks` / `generate_ks_dataset` (all parts, ordered by index).

    Returns:
        `KSTrajectories` with float32 ``u`` of shape (B, T, N) and float64 ``length``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    root = Path(directory)
    files = sorted(root.glob(f"{split}-part-*.npz"))
    if not files:
        raise FileNotFoundError(
            f"no {split!r} data in {root}; generate it with `difflab physics ks generate --out "
            f"{root}`."
        )
    us, lengths, idx = [], [], []
    dt = nu = None
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            missing = {"u", "length", "index", "dt", "nu"} - set(z.files)
            if missing:
                raise ValueError(f"{f} is not a KS part file: missing {sorted(missing)}.")
            if z["u"].ndim != 3:
                raise ValueError(f"{f}: `u` must have shape (B, T, N), got {z['u'].shape}.")
            us.append(z["u"])
            lengths.append(z["length"])
            idx.append(z["index"])
            if dt is None:
                dt, nu = float(z["dt"]), float(z["nu"])
            elif (dt, nu) != (float(z["dt"]), float(z["nu"])):
                raise ValueError(f"{f}: dt/nu differ from the other parts of split {split!r}.")
    index = np.concatenate(idx)
    order = np.argsort(index, kind="stable")
    if len(np.unique(index)) != len(index):
        raise ValueError(f"split {split!r} in {root} has duplicate trajectory indices.")
    assert dt is not None and nu is not None
    return KSTrajectories(
        u=torch.from_numpy(np.concatenate(us)[order]),
        length=torch.from_numpy(np.concatenate(lengths)[order]),
        dt=dt,
        nu=nu,
        index=torch.from_numpy(index[order]),
    )


def generate_ks_dataset(
    out: str | Path,
    sizes: dict[str, int] | Sequence[int],
    config: KSConfig,
    *,
    seed: int = 0,
    eval_steps: int | None = None,
    device: torch.device | str | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate train/valid/test KS splits into `out`, this rank's share of each.

    Under ``torchrun`` every rank calls this with the same arguments and writes its own part
    (``shard_indices``); rank 0 writes ``meta.json``.

    Args:
        out: dataset folder.
        sizes: trajectories per split, ``{"train": n, ...}`` or ``(n_train, n_valid, n_test)``.
        config: solver and sampling settings.
        seed: dataset seed; split ``s`` uses stream ``SPLITS.index(s)``.
        eval_steps: saved steps of the valid and test trajectories (``config.n_steps`` when
            None). PDE-Refiner trains on 140-step trajectories and tests on 640 steps (app. D),
            so that the correlation times are not capped by the trajectory length.
        device: integration device.
        batch_size: trajectories integrated together.
        progress: progress bars.

    Returns:
        The metadata written to ``meta.json``.
    """
    counts = dict(zip(SPLITS, sizes, strict=False)) if not isinstance(sizes, dict) else sizes
    unknown = set(counts) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}; expected {', '.join(SPLITS)}.")
    if eval_steps is not None and eval_steps < 1:
        raise ValueError(f"`eval_steps` must be >= 1, got {eval_steps}.")
    steps = {
        s: config.n_steps if s == "train" or eval_steps is None else eval_steps for s in SPLITS
    }
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    r, w = rank(), world_size()
    for split, n in counts.items():
        if n <= 0:
            continue
        data = generate_ks(
            shard_indices(n, rank=r, world_size=w),
            replace(config, n_steps=steps[split]),
            seed=seed,
            split=SPLITS.index(split),
            batch_size=batch_size,
            device=device,
            progress=progress,
        )
        save_ks(root, split, data, part=r)
    meta = {
        "pde": "kuramoto-sivashinsky",
        "seed": seed,
        "sizes": counts,
        "steps": {s: steps[s] for s in counts},
        "config": asdict(config),
    }
    if r == 0:
        (root / "meta.json").write_text(json.dumps(meta, indent=2))
    barrier()
    return meta

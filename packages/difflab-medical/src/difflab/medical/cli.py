"""The ``difflab medical`` command group, added through the ``difflab.commands`` entry point.

Commands (each simulates measurements from the given ground truth, reconstructs, prints the
scores and writes the result plus a PNG):

* ``ct-recon``: sparse-view or limited-angle CT with DiffusionMBIR (or ``--method`` slice,
  tv, fbp);
* ``mri-recon``: Cartesian MRI at a given acceleration;
* ``hsi-restore``: DDS2M hyperspectral denoising, completion or super-resolution.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

HELP = "CT/MRI and hyperspectral restoration (DiffusionMBIR, DDS2M)"
QUICK_STEPS = 400  # --train-quick: a few minutes on 2 CPU cores at 32^2 slices


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``difflab medical ...`` to the top-level parser."""
    parser = subparsers.add_parser("medical", help=HELP, description=f"difflab medical: {HELP}.")

    def _print_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=_print_help)
    sub = parser.add_subparsers(title="commands", dest="medical_command", metavar="COMMAND")

    ct = sub.add_parser("ct-recon", help="sparse-view / limited-angle CT (DiffusionMBIR)")
    ct.add_argument("--views", type=int, default=8, help="number of projections (8, 4, 2)")
    ct.add_argument(
        "--limited-angle", type=float, default=None, metavar="DEG",
        help="angles spread over [0, DEG) instead of [0, 180)",
    )  # fmt: skip
    _volume_args(ct)
    ct.set_defaults(func=_ct)

    mri = sub.add_parser("mri-recon", help="Cartesian single-coil MRI (DiffusionMBIR)")
    mri.add_argument("--acceleration", type=float, default=4.0, help="undersampling factor")
    mri.add_argument("--mask", choices=("uniform", "gaussian"), default="uniform")
    mri.add_argument("--center-fraction", type=float, default=0.08)
    mri.add_argument("--dims", type=int, choices=(2, 3), default=2, help="2-D or 3-D FFT")
    _volume_args(mri)
    mri.set_defaults(func=_mri)

    hsi = sub.add_parser("hsi-restore", help="hyperspectral restoration (DDS2M)")
    hsi.add_argument("--task", choices=("denoise", "complete", "sr"), required=True)
    src = hsi.add_mutually_exclusive_group(required=True)
    src.add_argument("--in", dest="inp", help="cube: .npy (C, H, W) or NIfTI (H, W, C)")
    src.add_argument("--synthetic", type=int, metavar="SIZE", help="use a synthetic cube")
    hsi.add_argument("--out", required=True, help="restored cube (.npy or .nii.gz)")
    hsi.add_argument("--sigma", type=float, default=0.1, help="noise std (denoise)")
    hsi.add_argument("--keep", type=float, default=0.2, help="kept fraction (complete)")
    hsi.add_argument("--factor", type=int, default=2, help="downsampling factor (sr)")
    hsi.add_argument("--steps", type=int, default=None, help="diffusion steps")
    hsi.add_argument("--rank", type=int, default=None, help="VS-module rank")
    hsi.add_argument("--png", default=None, help="figure path (default: OUT with .png)")
    hsi.add_argument("--seed", type=int, default=0)
    hsi.add_argument("--no-progress", action="store_true")
    hsi.set_defaults(func=_hsi)


def _volume_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", required=True, help="ground-truth volume (.nii/.nii.gz)")
    p.add_argument("--out", required=True, help="reconstruction (.nii.gz)")
    prior = p.add_mutually_exclusive_group()
    prior.add_argument("--prior", default=None, help="prior folder from train_prior")
    prior.add_argument(
        "--train-quick", action="store_true",
        help=f"train a small prior on synthetic phantoms first ({QUICK_STEPS} steps)",
    )  # fmt: skip
    p.add_argument("--quick-steps", type=int, default=QUICK_STEPS, help=argparse.SUPPRESS)
    p.add_argument(
        "--method", choices=("mbir", "slice", "tv", "fbp"), default="mbir",
        help="DiffusionMBIR, slice-by-slice diffusion, TV-only or FBP/zero-filled",
    )  # fmt: skip
    p.add_argument("--steps", type=int, default=None, help="sampler steps")
    p.add_argument("--png", default=None, help="figure path (default: OUT with .png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")


def _png_path(args: argparse.Namespace) -> Path:
    if args.png:
        return Path(args.png)
    out = Path(args.out)
    stem = out.name.removesuffix(".gz").removesuffix(".nii").removesuffix(".npy")
    return out.with_name(stem + ".png")


def _load_volume(path: str):
    import torch

    from .data import load_nifti

    nii = load_nifti(path)
    data = torch.as_tensor(nii.data.astype("float64"))
    if data.ndim > 3:  # a 4-D (or 5-D) file: reconstruct its first volume
        data = data.reshape(*data.shape[:3], -1)[..., 0]
    vol = data.permute(2, 1, 0).contiguous()  # (x, y, z) -> (D=z, H=y, W=x)
    lo, hi = float(vol.min()), float(vol.max())
    scale = hi - lo if hi > lo else 1.0
    return nii, ((vol - lo) / scale).float(), lo, scale


def _prior(args: argparse.Namespace, size: int):
    import torch

    from .data import random_ellipsoids
    from .mbir import PriorConfig, load_prior, train_prior

    if args.prior:
        return load_prior(args.prior)
    if not args.train_quick:
        raise SystemExit(
            "error: --method mbir/slice needs a prior: pass --prior DIR or --train-quick"
        )
    vols = random_ellipsoids(16, size, generator=torch.Generator().manual_seed(args.seed))
    cfg = PriorConfig(model_channels=16, steps=args.quick_steps, batch_size=16)
    out_dir = Path(args.out).with_name(Path(args.out).name.split(".")[0] + "_prior")
    print(f"training a quick prior ({cfg.steps} steps) -> {out_dir}", file=sys.stderr)
    return train_prior(vols, cfg, seed=args.seed, out_dir=out_dir, progress=not args.no_progress)


def _run_volume(args: argparse.Namespace, op, init) -> int:
    import torch

    from .data import save_nifti
    from .mbir import PRESETS, reconstruct, tv_reconstruct, with_steps
    from .metrics import view_scores
    from .viz import save_orthoviews

    nii, vol, lo, scale = args._volume
    y = op.A(vol)
    if args.method == "fbp":
        rec = init(y)
    elif args.method == "tv":
        rec = tv_reconstruct(op, y, tuple(vol.shape), lam=0.02, rho=0.4, iters=100)
    else:
        den = _prior(args, vol.shape[-1])
        preset = args._preset if args.method == "mbir" else "slice"
        cfg = PRESETS[preset] if args.steps is None else with_steps(preset, args.steps)
        gen = torch.Generator().manual_seed(args.seed)
        rec = reconstruct(
            op, y, tuple(vol.shape), den, cfg, generator=gen, progress=not args.no_progress
        )
    scores = view_scores(rec, vol, data_range=1.0)
    print(f"{args.method}: {scores}")
    out = (rec * scale + lo).permute(2, 1, 0).numpy().astype(nii.data.dtype, copy=False)
    if out.dtype.kind in "iu":
        out = rec.mul(scale).add(lo).round().permute(2, 1, 0).numpy().astype(nii.data.dtype)
    save_nifti(args.out, out, like=nii)
    png = save_orthoviews(_png_path(args), {"truth": vol, args.method: rec}, vmin=0, vmax=1)
    print(f"wrote {args.out} and {png}")
    return 0


def _ct(args: argparse.Namespace) -> int:
    from .operators import ParallelBeamCT, fbp

    args._volume = _load_volume(args.inp)
    d, h, w = args._volume[1].shape
    if h != w:
        raise SystemExit(f"error: CT needs square slices, got {h} x {w} (H x W)")
    if args.limited_angle is not None:
        op = ParallelBeamCT.limited_angle(h, args.limited_angle, args.views)
    else:
        op = ParallelBeamCT.sparse_view(h, args.views)
    if args.limited_angle is not None:
        args._preset = "ct-limited"
    else:
        args._preset = "ct" if args.views >= 8 else "ct-4" if args.views >= 4 else "ct-2"
    return _run_volume(args, op, lambda y: fbp(op, y))


def _mri(args: argparse.Namespace) -> int:
    import torch

    from .operators import CartesianMRI, gaussian_mask, uniform_mask

    args._volume = _load_volume(args.inp)
    shape = tuple(args._volume[1].shape)
    mshape = shape if args.dims == 3 else shape[1:]
    if args.mask == "uniform":
        mask = uniform_mask(mshape, args.acceleration, center_fraction=args.center_fraction)
    else:
        mask = gaussian_mask(
            mshape, args.acceleration, center_fraction=args.center_fraction,
            two_d=args.dims == 3, generator=torch.Generator().manual_seed(args.seed),
        )  # fmt: skip
    op = CartesianMRI(mask, dims=args.dims)
    args._preset = "mri"
    return _run_volume(args, op, op.A_dagger)


def _hsi(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from diffcore.operators import LinearOperator

    from .data import hyperspectral_cube, load_nifti, save_nifti
    from .dds2m import DDS2MConfig, restore
    from .metrics import psnr, sam
    from .operators import Identity, SpatialDownsample, random_pixel_mask
    from .viz import save_cube_views

    gen = torch.Generator().manual_seed(args.seed)
    nii = None
    if args.synthetic:
        cube = hyperspectral_cube(args.synthetic, generator=gen)[0]
    elif args.inp.endswith(".npy"):
        cube = torch.as_tensor(np.load(args.inp, allow_pickle=False)).float()
    else:
        nii = load_nifti(args.inp)
        cube = torch.as_tensor(np.asarray(nii.data, dtype=np.float32)).permute(2, 0, 1)
    if cube.ndim != 3:
        raise SystemExit(f"error: a cube must be (C, H, W), got shape {tuple(cube.shape)}")
    x = cube[None]
    op: LinearOperator
    if args.task == "denoise":
        op = Identity()
        y = x + args.sigma * torch.randn(x.shape, generator=gen)
        sigma = args.sigma
    elif args.task == "complete":
        op = random_pixel_mask(tuple(cube.shape), args.keep, generator=gen)
        y = op.A(x)
        sigma = 0.01
    else:
        op = SpatialDownsample(args.factor)
        y = op.A(x)
        sigma = 0.01
    cfg = DDS2MConfig(noise_std=sigma)
    if args.steps:
        cfg = replace(cfg, steps=args.steps)
    if args.rank:
        cfg = replace(cfg, rank=args.rank)
    c, h, w = cube.shape
    rec = restore(op, y, (c, h, w), cfg, generator=gen, progress=not args.no_progress)
    rng = float(cube.max() - cube.min())
    print(
        f"DDS2M {args.task}: PSNR {psnr(rec, cube, data_range=rng):.2f} dB, "
        f"SAM {sam(rec, cube):.2f} deg"
    )
    if args.out.endswith(".npy"):
        np.save(args.out, rec.numpy())
    else:
        save_nifti(args.out, rec.permute(1, 2, 0).numpy(), like=nii)
    observed = op.A_adjoint(y)[0] if args.task != "sr" else op.A_adjoint(y)[0] * args.factor**2
    png = save_cube_views(_png_path(args), {"truth": cube, "observed": observed, "DDS2M": rec})
    print(f"wrote {args.out} and {png}")
    return 0

"""Reproduction runs (marked slow): DiffusionMBIR on 8-view CT and DDS2M denoising.

Run with ``nice uv run pytest tests/medical/test_slow.py -m slow -s``; both print their tables.
The CT run uses CUDA when present (``DIFFLAB_MEDICAL_DEVICE=cpu`` forces the CPU).
"""

import os
import time

import pytest
import torch

from difflab.medical.data import hyperspectral_cube, random_ellipsoids
from difflab.medical.dds2m import DDS2MConfig, low_rank_restore, restore, tv_denoise
from difflab.medical.mbir import PriorConfig, reconstruct, train_prior, tv_reconstruct
from difflab.medical.metrics import VIEWS, psnr, sam, view_scores
from difflab.medical.operators import Identity, ParallelBeamCT, fbp

pytestmark = pytest.mark.slow
DEVICE = os.environ.get("DIFFLAB_MEDICAL_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")


def test_mbir_8view_ct_beats_fbp_and_slice_by_slice():
    t0 = time.time()
    vols = random_ellipsoids(24, 32, generator=torch.Generator().manual_seed(0))
    cfg = PriorConfig(model_channels=16, steps=500, batch_size=16, lr=2e-3)
    prior = train_prior(vols, cfg, seed=0, progress=False, device=DEVICE)
    t_train = time.time() - t0
    gt = random_ellipsoids(1, 32, generator=torch.Generator().manual_seed(123))[0].to(DEVICE)
    op = ParallelBeamCT.sparse_view(32, 8)
    y = op.A(gt)
    recs = {"fbp": fbp(op, y), "tv": tv_reconstruct(op, y, tuple(gt.shape), lam=0.02, rho=0.4)}
    times = {}
    for name in ("slice", "ct"):
        t = time.time()
        recs[name] = reconstruct(
            op, y, tuple(gt.shape), prior, name, generator=torch.Generator(DEVICE).manual_seed(0),
            progress=False,
        )  # fmt: skip
        times[name] = time.time() - t
    scores = {k: view_scores(r.cpu(), gt.cpu(), data_range=1.0) for k, r in recs.items()}
    print(f"\n[{DEVICE}] prior training {t_train:.0f} s; sampling {times}")
    for k, s in scores.items():
        print(f"{k:>6}: {s}")
    mbir, slc, fb = scores["ct"].psnr, scores["slice"].psnr, scores["fbp"].psnr
    assert all(mbir[v] >= fb[v] + 8 for v in VIEWS)
    assert mbir["coronal"] > slc["coronal"] and mbir["sagittal"] > slc["sagittal"]


def test_dds2m_denoising_beats_tv_and_truncated_svd():
    rows = []
    for seed in (0, 1, 2):
        g = torch.Generator().manual_seed(seed)
        cube = hyperspectral_cube(32, 31, endmembers=4, generator=g)[0]
        y = cube + 0.1 * torch.randn(cube.shape, generator=g)
        t = time.time()
        cfg = DDS2MConfig(rank=4, noise_std=0.1)
        out = {
            "dds2m": restore(Identity(), y[None], tuple(cube.shape), cfg,
                             generator=torch.Generator().manual_seed(seed), progress=False),
            "tv": tv_denoise(y, weight=0.1),
            "tsvd": low_rank_restore(Identity(), y[None], tuple(cube.shape), rank=4),
        }  # fmt: skip
        res = {k: (psnr(v, cube, data_range=1.0), sam(v, cube)) for k, v in out.items()}
        rows.append(res)
        print(
            f"\nseed {seed} ({time.time() - t:.0f} s): "
            + ", ".join(f"{k} {p:.2f} dB / SAM {s:.2f} deg" for k, (p, s) in res.items())
        )
    for res in rows:
        for base in ("tv", "tsvd"):
            assert res["dds2m"][0] > res[base][0]
            assert res["dds2m"][1] < res[base][1]

"""Fast tests of difflab.medical: adjoints, FBP, NIfTI I/O, metrics, small end-to-end runs."""

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from diffcore import cli
from diffcore.operators import Mask, adjointness_error
from difflab.medical.data import (
    NiftiError,
    hyperspectral_cube,
    load_nifti,
    random_ellipsoids,
    save_nifti,
    shepp_logan_2d,
    shepp_logan_3d,
)
from difflab.medical.dds2m import DDS2MConfig, low_rank_restore, restore, tv_denoise
from difflab.medical.mbir import (
    ADMMTV,
    MBIRConfig,
    PriorConfig,
    dz,
    dz_adjoint,
    load_prior,
    reconstruct,
    train_prior,
    tv_reconstruct,
)
from difflab.medical.metrics import psnr, sam, view_scores
from difflab.medical.operators import (
    CartesianMRI,
    Identity,
    ParallelBeamCT,
    SpatialDownsample,
    fbp,
    gaussian_mask,
    random_pixel_mask,
    uniform_mask,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _operators():
    g = _gen(1)
    return {
        "ct-sparse-8": (ParallelBeamCT.sparse_view(24, 8), (3, 24, 24)),
        "ct-limited-90": (ParallelBeamCT.limited_angle(24, 90.0, 30), (2, 24, 24)),
        "mri-2d-uniform": (CartesianMRI(uniform_mask((16, 16), 4)), (3, 16, 16)),
        "mri-2d-gauss": (CartesianMRI(gaussian_mask((16, 16), 4, generator=g)), (3, 16, 16)),
        "mri-3d-gauss": (
            CartesianMRI(gaussian_mask((8, 16, 16), 6, two_d=True, generator=g), dims=3),
            (2, 8, 16, 16),
        ),
        "hsi-identity": (Identity(), (1, 5, 8, 8)),
        "hsi-mask": (random_pixel_mask((5, 8, 8), 0.3, generator=g), (1, 5, 8, 8)),
        "hsi-sr": (SpatialDownsample(2, sigma=1.0), (1, 5, 8, 8)),
        "hsi-decimate": (SpatialDownsample(4, sigma=0.0), (1, 5, 8, 8)),
    }


@pytest.mark.parametrize("name", list(_operators()))
def test_adjoint(name):
    op, shape = _operators()[name]
    g = _gen(2)
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        x = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
        y = torch.randn(op.A(x).shape, generator=g, dtype=torch.float64).to(dtype)
        assert adjointness_error(op, x, y) < tol, name
        assert op.A(x).dtype == dtype


def test_dz_adjoint():
    g = _gen(3)
    x, gz = torch.randn(5, 4, 3, generator=g, dtype=torch.float64), None
    for axis in (0, 1, 2):
        gz = torch.randn(dz(x, axis).shape, generator=g, dtype=torch.float64)
        lhs = (dz(x, axis) * gz).sum()
        rhs = (x * dz_adjoint(gz, axis)).sum()
        assert float(abs(lhs - rhs) / abs(lhs)) < 1e-12


def test_fbp_full_view_psnr():
    n = 64
    img = shepp_logan_3d(n).double()[n // 2]
    img = torch.nn.functional.avg_pool2d(img[None, None], 3, 1, 1, count_include_pad=False)[0, 0]
    op = ParallelBeamCT.sparse_view(n, math.ceil(math.pi / 2 * n))
    rec = fbp(op, op.A(img))
    assert psnr(rec, img, data_range=1.0) > 30


def test_fbp_sparse_view_worse_than_full():
    img = shepp_logan_2d(32)
    full = ParallelBeamCT.sparse_view(32, 60)
    sparse = ParallelBeamCT.sparse_view(32, 4)
    p_full = psnr(fbp(full, full.A(img)), img, data_range=1.0)
    p_sparse = psnr(fbp(sparse, sparse.A(img), filter_name="hann"), img, data_range=1.0)
    assert p_full > p_sparse + 5


def test_ct_errors():
    op = ParallelBeamCT.sparse_view(16, 4)
    with pytest.raises(ValueError, match="must end in"):
        op.A(torch.zeros(2, 15, 16))
    with pytest.raises(ValueError, match="views"):
        ParallelBeamCT.sparse_view(16, 0)
    with pytest.raises(ValueError, match="filter_name"):
        fbp(op, op.A(torch.zeros(16, 16)), filter_name="cosine")


def test_mri_masks_and_zero_filled():
    m = uniform_mask((32, 32), 4, center_fraction=0.08)
    assert 0.25 <= float(m.mean()) <= 0.4
    assert bool((m[:, 0] == 1).all())  # DC line always kept
    gm = gaussian_mask((32, 32), 8, generator=_gen(0))
    assert float(gm.mean()) == pytest.approx(1 / 8, abs=0.05)
    x = torch.rand(2, 32, 32, dtype=torch.float64)
    full = CartesianMRI(torch.ones(32, 32))
    assert torch.allclose(full.A_dagger(full.A(x)), x, atol=1e-12)
    with pytest.raises(ValueError, match="acceleration"):
        uniform_mask((8, 8), 0.5)


def test_random_pixel_mask_fraction():
    m = random_pixel_mask((4, 32, 32), 0.25, generator=_gen(0))
    assert isinstance(m, Mask)
    assert float(m.mask.mean()) == pytest.approx(0.25, abs=0.03)
    m2 = random_pixel_mask((4, 32, 32), 0.25, per_band=False, generator=_gen(0))
    assert torch.equal(m2.mask[0], m2.mask[3])


# ---- NIfTI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.float64])
def test_nifti_round_trip(tmp_path, dtype):
    data = (np.random.default_rng(0).random((6, 7, 5)) * 100).astype(dtype)
    affine = np.diag([0.5, 0.7, 2.0, 1.0])
    affine[:3, 3] = [-10, 4, 2.5]
    path = save_nifti(tmp_path / "v.nii.gz", data, affine=affine)
    vol = load_nifti(path)
    assert vol.data.shape == data.shape and vol.data.dtype == data.dtype
    np.testing.assert_array_equal(vol.data, data)
    np.testing.assert_allclose(vol.affine, affine)
    again = load_nifti(save_nifti(tmp_path / "w.nii", vol.data, like=vol))
    np.testing.assert_allclose(again.affine, affine)
    assert again.header.get_zooms() == vol.header.get_zooms()


def test_nifti_example_file_keeps_header(tmp_path):
    from nibabel.testing import data_path

    vol = load_nifti(Path(data_path) / "anatomical.nii")
    out = load_nifti(save_nifti(tmp_path / "a.nii.gz", vol.data, like=vol))
    np.testing.assert_allclose(out.affine, vol.affine)
    assert out.data.shape == vol.data.shape and out.data.dtype == vol.data.dtype
    assert out.header.get_zooms() == vol.header.get_zooms()
    assert out.header.get_xyzt_units() == vol.header.get_xyzt_units()


def test_nifti_errors(tmp_path):
    with pytest.raises(NiftiError, match="no NIfTI file"):
        load_nifti(tmp_path / "missing.nii.gz")
    text = tmp_path / "notes.nii"
    text.write_text("this is not an image\n" * 20)
    with pytest.raises(NiftiError, match="not a readable NIfTI"):
        load_nifti(text)
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(NiftiError, match="not a readable NIfTI"):
        load_nifti(garbage)
    good = save_nifti(tmp_path / "good.nii.gz", np.zeros((16, 16, 16), np.float32))
    raw = gzip.decompress(good.read_bytes())
    truncated = tmp_path / "trunc.nii.gz"
    truncated.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(NiftiError, match="truncated|not a readable"):
        load_nifti(truncated)
    png = tmp_path / "img.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(NiftiError):
        load_nifti(png)


# ---- data and metrics -----------------------------------------------------------------------


def test_phantoms_are_continuous_in_z():
    vols = random_ellipsoids(2, 16, generator=_gen(0))
    assert vols.shape == (2, 16, 16, 16) and vols.min() >= 0 and vols.max() <= 1
    sl = shepp_logan_3d(16)
    assert sl.shape == (16, 16, 16) and float(sl.max()) == pytest.approx(1.0)
    jump = (vols[:, 1:] - vols[:, :-1]).abs().mean()
    assert jump < (vols - vols.roll(5, dims=1)).abs().mean()


def test_hyperspectral_cube_is_low_rank():
    cube, spectra, ab = hyperspectral_cube(16, 20, endmembers=3, generator=_gen(0))
    assert cube.shape == (20, 16, 16) and spectra.shape == (3, 20) and ab.shape == (3, 16, 16)
    s = torch.linalg.svdvals(cube.reshape(20, -1).double())
    assert float(s[3] / s[0]) < 1e-5
    assert torch.allclose(ab.sum(0), torch.ones(16, 16), atol=1e-5)


def test_metrics():
    vol = shepp_logan_3d(12)
    s = view_scores(vol, vol, data_range=1.0)
    assert all(v > 100 for v in s.psnr.values()) and all(
        v == pytest.approx(1) for v in s.ssim.values()
    )
    noisy = vol + 0.1 * torch.randn(vol.shape, generator=_gen(0))
    p = view_scores(noisy, vol, data_range=1.0).psnr
    assert all(18 < v < 22 for v in p.values())
    cube = torch.rand(5, 4, 4) + 0.1
    assert sam(cube, cube) == pytest.approx(0, abs=1e-3)
    assert sam(3 * cube, cube) == pytest.approx(0, abs=1e-3)  # scale invariant


# ---- end to end (tiny) ----------------------------------------------------------------------


def test_tv_reconstruct_beats_fbp():
    gt = random_ellipsoids(1, 16, generator=_gen(5))[0]
    op = ParallelBeamCT.sparse_view(16, 6)
    y = op.A(gt)
    rec = tv_reconstruct(op, y, tuple(gt.shape), lam=0.02, rho=0.4, iters=30)
    assert psnr(rec, gt, data_range=1.0) > psnr(fbp(op, y), gt, data_range=1.0) + 5


def test_mbir_end_to_end_tiny(tmp_path):
    vols = random_ellipsoids(2, 8, generator=_gen(0))
    prior = train_prior(
        vols, PriorConfig(model_channels=8, steps=2, batch_size=4), out_dir=tmp_path,
        progress=False,
    )  # fmt: skip
    prior = load_prior(tmp_path / "prior")
    gt = vols[0]
    for op in (ParallelBeamCT.sparse_view(8, 4), CartesianMRI(uniform_mask((8, 8), 2))):
        y = op.A(gt)
        outs = [
            reconstruct(op, y, (8, 8, 8), prior, MBIRConfig(steps=3, rho=r, snr=0.01),
                        generator=_gen(0),
                        progress=False)
            for r in (2.0, 0.0)
        ]  # fmt: skip
        unshared = MBIRConfig(steps=3, rho=0.5, snr=0.01, share=False)
        outs_u = reconstruct(op, y, (8, 8, 8), prior, unshared, generator=_gen(0), progress=False)
        assert torch.isfinite(outs_u).all()
        for rec in outs:
            assert rec.shape == gt.shape and torch.isfinite(rec).all()
    again = reconstruct(op, y, (8, 8, 8), prior, MBIRConfig(steps=3, snr=0.01), generator=_gen(0),
                        progress=False)  # fmt: skip
    assert torch.equal(again, outs[0])  # seeded
    with pytest.raises(ValueError, match="slices"):
        ADMMTV(op, y).init(torch.zeros(8, 8, 8))


def test_load_prior_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a difflab-medical prior"):
        load_prior(tmp_path)


def test_dds2m_and_baselines_tiny():
    cube = hyperspectral_cube(8, 6, endmembers=2, generator=_gen(0))[0]
    y = cube + 0.1 * torch.randn(cube.shape, generator=_gen(1))
    cfg = DDS2MConfig(steps=3, fit_iters=2, rank=2, width=8)
    rec = restore(Identity(), y[None], tuple(cube.shape), cfg, generator=_gen(0), progress=False)
    assert rec.shape == cube.shape and torch.isfinite(rec).all()
    assert tv_denoise(y, weight=0.1).shape == cube.shape
    assert psnr(low_rank_restore(Identity(), y[None], tuple(cube.shape), 2), cube) > psnr(y, cube)
    op = random_pixel_mask(tuple(cube.shape), 0.5, generator=_gen(2))
    comp = low_rank_restore(op, op.A(cube[None]), tuple(cube.shape), 2, iters=50)
    assert psnr(comp, cube) > psnr(op.A(cube), cube)
    sr = SpatialDownsample(2)
    rec = restore(sr, sr.A(cube[None]), tuple(cube.shape), cfg, generator=_gen(0), progress=False)
    assert rec.shape == cube.shape


# ---- CLI ------------------------------------------------------------------------------------


def test_cli_ct_and_mri(tmp_path):
    vol = shepp_logan_3d(8).numpy().transpose(2, 1, 0).astype(np.float32)
    src = save_nifti(tmp_path / "vol.nii.gz", vol, affine=np.diag([2.0, 2.0, 3.0, 1.0]))
    out = tmp_path / "rec.nii.gz"
    args = ["medical", "ct-recon", "--views", "4", "--in", str(src), "--out", str(out)]
    assert cli.main([*args, "--method", "fbp", "--no-progress"]) == 0
    rec = load_nifti(out)
    assert rec.data.shape == vol.shape and rec.data.dtype == np.float32
    np.testing.assert_allclose(rec.affine, np.diag([2.0, 2.0, 3.0, 1.0]))
    assert (tmp_path / "rec.png").stat().st_size > 0
    quick = [*args, "--train-quick", "--quick-steps", "2", "--steps", "2", "--no-progress"]
    assert cli.main(quick) == 0
    mri = ["medical", "mri-recon", "--acceleration", "2", "--in", str(src), "--out", str(out)]
    assert cli.main([*mri, "--method", "tv", "--no-progress"]) == 0
    assert (
        cli.main([*mri, "--prior", str(tmp_path / "rec_prior" / "prior"), "--steps", "2",
                  "--mask", "gaussian", "--dims", "3", "--no-progress"])
        == 0
    )  # fmt: skip


def test_cli_hsi(tmp_path, capsys):
    out = tmp_path / "cube.npy"
    for task in ("denoise", "complete", "sr"):
        argv = ["medical", "hsi-restore", "--task", task, "--synthetic", "8", "--out", str(out),
                "--steps", "2", "--no-progress"]  # fmt: skip
        assert cli.main(argv) == 0
        assert np.load(out).shape == (31, 8, 8)
    assert "SAM" in capsys.readouterr().out
    assert (tmp_path / "cube.png").stat().st_size > 0


def test_cli_bad_input(tmp_path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_text("nope")
    with pytest.raises(NiftiError):
        cli.main(["medical", "ct-recon", "--in", str(bad), "--out", str(tmp_path / "o.nii.gz"),
                  "--method", "fbp"])  # fmt: skip


def test_unknown_preset_and_pep420_layout():
    op = ParallelBeamCT.sparse_view(8, 2)
    with pytest.raises(ValueError, match="unknown preset"):
        reconstruct(op, op.A(torch.zeros(8, 8, 8)), (8, 8, 8), None, "nope")  # type: ignore[arg-type]
    src = Path(__file__).parents[2] / "packages" / "difflab-medical" / "src" / "difflab"
    assert not (src / "__init__.py").exists()

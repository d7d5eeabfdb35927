"""Volumes in and out (NIfTI), synthetic 3-D phantoms and hyperspectral cubes.

The synthetic data are small enough to train 2-D slice priors on a CPU, and continuous from
slice to slice (ellipsoids, not independent 2-D shapes), which is what DiffusionMBIR's z-TV
relies on.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "NiftiError",
    "NiftiVolume",
    "hyperspectral_cube",
    "load_nifti",
    "random_ellipsoids",
    "save_nifti",
    "shepp_logan_2d",
    "shepp_logan_3d",
]


class NiftiError(ValueError):
    """A file is not a readable NIfTI image (missing, corrupt, wrong format)."""


@dataclass(frozen=True)
class NiftiVolume:
    """A volume with its NIfTI geometry.

    Attributes:
        data: (X, Y, Z) array in the file's dtype (nibabel's voxel order).
        affine: (4, 4) voxel-to-world matrix.
        header: the ``nibabel.Nifti1Header`` (or Nifti2), carried through to :func:`save_nifti`.
    """

    data: np.ndarray
    affine: np.ndarray
    header: object


def load_nifti(path: str | os.PathLike[str]) -> NiftiVolume:
    """Read a ``.nii`` / ``.nii.gz`` file, keeping its affine, header and on-disk dtype.

    Raises:
        NiftiError: the file is missing, not NIfTI, truncated or otherwise unreadable.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise NiftiError(f"no NIfTI file at {str(path)!r}.")
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises several types for bad files
        raise NiftiError(
            f"{str(path)!r} is not a readable NIfTI file ({type(err).__name__}: {err}); "
            "expected a .nii or .nii.gz image."
        ) from err
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise NiftiError(f"{str(path)!r} is a {type(img).__name__}, not a NIfTI image.")
    try:
        data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, gzip.BadGzipFile) as err:
        raise NiftiError(
            f"{str(path)!r} has a NIfTI header but its voxel data cannot be read "
            f"({type(err).__name__}: {err}); the file is probably truncated."
        ) from err
    if data.ndim < 3:
        raise NiftiError(f"{str(path)!r} holds a {data.ndim}-D image; expected a 3-D volume.")
    return NiftiVolume(data=data, affine=np.asarray(img.affine), header=img.header)


def save_nifti(
    path: str | os.PathLike[str],
    data: np.ndarray | Tensor,
    *,
    affine: np.ndarray | None = None,
    header: object = None,
    like: NiftiVolume | None = None,
) -> Path:
    """Write ``data`` as NIfTI-1 with the affine and header of ``like`` (or those given).

    The array is stored in its own dtype (the header's data type is updated to match); the
    default affine is the identity.
    """
    import nibabel as nib

    arr = data.detach().cpu().numpy() if isinstance(data, Tensor) else np.asarray(data)
    if like is not None:
        affine = like.affine if affine is None else affine
        header = like.header if header is None else header
    aff = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4):
        raise ValueError(f"`affine` must be (4, 4), got {aff.shape}.")
    hdr = header.copy() if header is not None else None  # type: ignore[attr-defined]
    img = nib.Nifti1Image(arr, aff, header=hdr)
    img.set_data_dtype(arr.dtype)
    if hdr is not None:  # keep the stored scaling out of the way: data are written as given
        img.header.set_slope_inter(1.0, 0.0)
    path = Path(path)
    nib.save(img, str(path))
    return path


def _ellipsoid_volume(
    size: tuple[int, int, int], params: Tensor, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Sum of ellipsoid indicators on a (D, H, W) grid over [-1, 1]^3.

    Rows of ``params``: (value, cz, cy, cx, az, ay, ax, phi); phi rotates in the y-x plane.
    """
    d, h, w = size
    z = torch.linspace(-1, 1, d, dtype=torch.float64)[:, None, None]
    y = torch.linspace(-1, 1, h, dtype=torch.float64)[None, :, None]
    x = torch.linspace(-1, 1, w, dtype=torch.float64)[None, None, :]
    vol = torch.zeros(size, dtype=torch.float64)
    for v, cz, cy, cx, az, ay, ax, phi in params.tolist():
        c, s = np.cos(phi), np.sin(phi)
        yr = (y - cy) * c + (x - cx) * s
        xr = -(y - cy) * s + (x - cx) * c
        inside = ((z - cz) / az) ** 2 + (yr / ay) ** 2 + (xr / ax) ** 2 <= 1
        vol = vol + v * inside
    return vol.to(dtype)


def shepp_logan_3d(size: int | tuple[int, int, int] = 64) -> Tensor:
    """A 3-D Shepp-Logan head phantom (Kak & Slaney's 2-D ellipses given a z extent).

    Values are the modified (higher-contrast) Shepp-Logan intensities, clipped to [0, 1].
    Returns (D, H, W), axis 0 being z (axial slices are ``vol[k]``).
    """
    size = (size,) * 3 if isinstance(size, int) else size
    # 2-D modified Shepp-Logan (Toft 1996): value, cx, cy, a_x, a_y, angle (deg); z half-axis
    # and centre chosen here so that every feature spans several slices.
    rows = [
        (1.0, 0.0, 0.0, 0.69, 0.92, 0.0, 0.0, 0.90),
        (-0.8, 0.0, -0.0184, 0.6624, 0.874, 0.0, 0.0, 0.88),
        (-0.2, 0.22, 0.0, 0.11, 0.31, -18.0, 0.0, 0.5),
        (-0.2, -0.22, 0.0, 0.16, 0.41, 18.0, 0.0, 0.5),
        (0.1, 0.0, 0.35, 0.21, 0.25, 0.0, 0.0, 0.5),
        (0.1, 0.0, 0.1, 0.046, 0.046, 0.0, 0.0, 0.3),
        (0.1, 0.0, -0.1, 0.046, 0.046, 0.0, -0.2, 0.3),
        (0.1, -0.08, -0.605, 0.046, 0.023, 0.0, 0.1, 0.3),
        (0.1, 0.0, -0.605, 0.023, 0.023, 0.0, 0.2, 0.3),
        (0.1, 0.06, -0.605, 0.023, 0.046, 0.0, -0.1, 0.3),
    ]
    params = torch.tensor(
        [(v, cz, -cy, cx, az, ay, ax, np.deg2rad(phi)) for v, cx, cy, ax, ay, phi, cz, az in rows]
    )
    return _ellipsoid_volume(size, params).clamp(0, 1)


def random_ellipsoids(
    n: int,
    size: int | tuple[int, int, int] = 32,
    *,
    max_ellipsoids: int = 8,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n`` random phantoms of ellipsoids inside a head-like shell, values in [0, 1].

    Each volume is an outer ellipsoid of intensity 0.2-0.4 with up to ``max_ellipsoids``
    inner ellipsoids of random position, axes, rotation and intensity added on top, then
    clipped to [0, 1]. Returns (n, D, H, W), smooth along z.
    """
    size = (size,) * 3 if isinstance(size, int) else size
    g = generator
    vols = []
    for _ in range(n):
        u = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
        shell = torch.tensor(
            [[0.2 + 0.2 * float(u(1)), 0, 0, 0, 0.8 + 0.15 * float(u(1)),
              0.7 + 0.2 * float(u(1)), 0.6 + 0.2 * float(u(1)), float(u(1) - 0.5) * 0.5]]
        )  # fmt: skip
        k = int(torch.randint(2, max_ellipsoids + 1, (1,), generator=g))
        val = 0.15 + 0.5 * u(k)
        sign = torch.where(u(k) < 0.25, -0.5, 1.0)
        centre = (u(k, 3) - 0.5) * 0.9
        axes = 0.08 + 0.3 * u(k, 3)
        axes[:, 0] = 0.2 + 0.5 * u(k)  # extended in z: inter-slice continuity
        phi = u(k) * np.pi
        inner = torch.cat([(val * sign)[:, None], centre, axes, phi[:, None]], dim=1)
        vols.append(_ellipsoid_volume(size, torch.cat([shell, inner])).clamp(0, 1))
    return torch.stack(vols)


def shepp_logan_2d(size: int = 64, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """scikit-image's Shepp-Logan phantom resized (anti-aliased) to (size, size)."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    img = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)
    return torch.as_tensor(img, dtype=dtype)


def _smooth(field: Tensor, passes: int) -> Tensor:
    k = torch.tensor([0.25, 0.5, 0.25], dtype=field.dtype)
    w = (k[:, None] * k[None, :])[None, None]
    out = field[:, None]
    for _ in range(passes):
        out = torch.nn.functional.conv2d(torch.nn.functional.pad(out, (1,) * 4, "reflect"), w)
    return out[:, 0]


def hyperspectral_cube(
    size: int = 64,
    bands: int = 31,
    *,
    endmembers: int = 4,
    regions: int = 6,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor, Tensor]:
    """A synthetic hyperspectral cube: smooth spectra mixed by piecewise-smooth abundances.

    Endmember spectra are sums of a few Gaussian bumps over the band axis (smooth, positive).
    Abundances are piecewise smooth: a Voronoi partition into ``regions`` cells, each with its
    own dominant endmember and a smooth random gradient, lightly blurred and normalised to sum
    to one (the linear mixing model with the sum-to-one constraint). The cube is scaled to a
    maximum of 1.

    Returns:
        cube: (C, H, W) with C = ``bands``; spectra: (R, C); abundances: (R, H, W).
    """
    g = generator
    wl = torch.linspace(0, 1, bands, dtype=torch.float64)
    spectra = torch.zeros(endmembers, bands, dtype=torch.float64)
    for r in range(endmembers):
        for _ in range(3):
            c, w, a = torch.rand(3, generator=g, dtype=torch.float64)
            spectra[r] += (0.3 + a) * torch.exp(-((wl - c) ** 2) / (2 * (0.08 + 0.25 * w) ** 2))
    spectra = 0.1 + spectra / spectra.amax(1, keepdim=True)
    seeds = torch.rand(regions, 2, generator=g, dtype=torch.float64)
    yy, xx = torch.meshgrid(
        torch.linspace(0, 1, size, dtype=torch.float64),
        torch.linspace(0, 1, size, dtype=torch.float64),
        indexing="ij",
    )
    dist = (yy[None] - seeds[:, 0, None, None]) ** 2 + (xx[None] - seeds[:, 1, None, None]) ** 2
    label = dist.argmin(0)
    owner = torch.randint(0, endmembers, (regions,), generator=g)
    ab = torch.full((endmembers, size, size), 0.05, dtype=torch.float64)
    for k in range(regions):
        cell = label == k
        slope = torch.rand(3, generator=g, dtype=torch.float64) - 0.5
        ramp = 0.6 + slope[0] * (yy - seeds[k, 0]) + slope[1] * (xx - seeds[k, 1])
        ab[owner[k]] += cell * ramp.clamp(0.2, 1.0)
        other = (owner[k] + 1 + int(slope[2] > 0)) % endmembers
        ab[other] += cell * 0.3 * (1 - ramp.clamp(0, 1))
    ab = _smooth(ab, 2).clamp_min(0)
    ab = ab / ab.sum(0, keepdim=True)
    cube = torch.einsum("rc,rhw->chw", spectra, ab)
    scale = cube.max()
    return (cube / scale).to(dtype), (spectra / scale).to(dtype), ab.to(dtype)

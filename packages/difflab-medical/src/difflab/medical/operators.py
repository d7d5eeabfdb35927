"""Forward operators of CT, MRI and hyperspectral imaging, on diffcore's ``LinearOperator``.

Every operator has an exactly matched adjoint (``<A x, y> == <x, A^T y>`` to float rounding,
checked with :func:`diffcore.operators.adjointness_error`):

* :class:`ParallelBeamCT` is an explicit sparse matrix (bilinear interpolation along each ray),
  and its adjoint is the stored transpose; :func:`fbp` is filtered back-projection with it.
* :class:`CartesianMRI` is a masked orthonormal FFT (2-D per slice or 3-D); k-space is returned
  as a real tensor with a trailing (real, imaginary) axis so that the real inner product of
  ``adjointness_error`` is the right one.
* :class:`SpatialDownsample` (blur + decimation) and :func:`random_pixel_mask` (with diffcore's
  ``Mask``) are the hyperspectral degradations; denoising uses :class:`Identity`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor

from diffcore.operators import Blur, LinearOperator, Mask

__all__ = [
    "CartesianMRI",
    "Identity",
    "ParallelBeamCT",
    "SpatialDownsample",
    "fbp",
    "gaussian_mask",
    "random_pixel_mask",
    "uniform_mask",
]

_RAY_STEP = 0.5  # samples per pixel along a ray: two, so every pixel a ray crosses is touched


@dataclass(frozen=True, eq=False)
class ParallelBeamCT(LinearOperator):
    """Parallel-beam Radon transform of (..., N, N) images -> sinograms (..., K, D).

    Ray ``(theta, s)`` is the line ``s (cos theta, sin theta) + t (-sin theta, cos theta)``
    through the image centre (pixel units); its line integral is approximated by bilinear
    interpolation at points ``_RAY_STEP`` pixels apart. The whole map is one sparse (K D, N^2)
    matrix built once, so ``A_adjoint`` is its exact transpose (the back-projection).

    Attributes:
        size: N, the image side.
        angles: (K,) projection angles in radians.
        n_det: D, detectors of unit spacing; default ``ceil(sqrt(2) N)`` (the diagonal).

    Use :meth:`sparse_view` and :meth:`limited_angle` for the usual geometries.
    """

    size: int
    angles: Tensor
    n_det: int | None = None
    # A cache of the built matrix (per dtype and device), not run state: the operator's
    # settings stay frozen and every call gives the same answer.
    _mats: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.size < 2:
            raise ValueError(f"`size` must be >= 2, got {self.size}.")
        if self.angles.ndim != 1 or self.angles.numel() == 0:
            raise ValueError(f"`angles` must be a non-empty 1-D tensor, got {self.angles.shape}.")

    @classmethod
    def sparse_view(cls, size: int, views: int) -> ParallelBeamCT:
        """``views`` equally spaced angles in [0, pi) (DiffusionMBIR: 8, 4 or 2 views)."""
        if views < 1:
            raise ValueError(f"`views` must be >= 1, got {views}.")
        return cls(size, torch.arange(views, dtype=torch.float64) * math.pi / views)

    @classmethod
    def limited_angle(cls, size: int, max_angle_deg: float = 90.0, views: int | None = None):
        """Angles equally spaced in [0, max_angle) (one per degree by default)."""
        if not 0 < max_angle_deg <= 180:
            raise ValueError(f"`max_angle_deg` must be in (0, 180], got {max_angle_deg}.")
        views = views or int(round(max_angle_deg))
        step = math.radians(max_angle_deg) / views
        return cls(size, torch.arange(views, dtype=torch.float64) * step)

    @property
    def detectors(self) -> int:
        """D, the number of detector bins."""
        return self.n_det or math.ceil(math.sqrt(2) * self.size)

    def _matrix(self, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
        key = (dtype, str(device))
        if key not in self._mats:
            if "base" not in self._mats:
                self._mats["base"] = self._build()
            a = self._mats["base"].to(device=device, dtype=dtype)
            with warnings.catch_warnings():  # "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                self._mats[key] = (a.to_sparse_csr(), a.t().coalesce().to_sparse_csr())
        return self._mats[key]

    def _build(self) -> Tensor:
        n, d = self.size, self.detectors
        theta = self.angles.to(torch.float64)
        s = torch.arange(d, dtype=torch.float64) - (d - 1) / 2
        half = math.sqrt(2) * n / 2 + 1
        m = int(math.ceil(2 * half / _RAY_STEP)) + 1
        t = (torch.arange(m, dtype=torch.float64) - (m - 1) / 2) * _RAY_STEP
        c, sn = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
        px = s[None, :, None] * c - t[None, None, :] * sn  # (K, D, M)
        py = s[None, :, None] * sn + t[None, None, :] * c
        col, row = px + (n - 1) / 2, py + (n - 1) / 2
        ray = (torch.arange(theta.numel())[:, None] * d + torch.arange(d)[None, :])[..., None]
        ray = ray.expand_as(col)
        c0, r0 = torch.floor(col), torch.floor(row)
        fc, fr = col - c0, row - r0
        rows, cols, vals = [], [], []
        for dr, dc, w in (
            (0, 0, (1 - fr) * (1 - fc)),
            (0, 1, (1 - fr) * fc),
            (1, 0, fr * (1 - fc)),
            (1, 1, fr * fc),
        ):
            rr, cc = (r0 + dr).long(), (c0 + dc).long()
            ok = (rr >= 0) & (rr < n) & (cc >= 0) & (cc < n) & (w > 0)
            rows.append(ray[ok])
            cols.append(rr[ok] * n + cc[ok])
            vals.append(w[ok] * _RAY_STEP)
        idx = torch.stack([torch.cat(rows), torch.cat(cols)])
        k = theta.numel()
        return torch.sparse_coo_tensor(
            idx, torch.cat(vals), (k * d, n * n), check_invariants=False
        ).coalesce()

    def _check(self, x: Tensor) -> None:
        if x.shape[-2:] != (self.size, self.size):
            raise ValueError(
                f"`x` must end in ({self.size}, {self.size}) (the image), got {tuple(x.shape)}."
            )

    def A(self, x: Tensor) -> Tensor:
        """Sinograms (..., K, D) of images (..., N, N)."""
        self._check(x)
        a, _ = self._matrix(x.dtype, x.device)
        lead = x.shape[:-2]
        flat = x.reshape(-1, self.size**2).T
        out = (a @ flat).T
        return out.reshape(*lead, self.angles.numel(), self.detectors)

    def A_adjoint(self, y: Tensor) -> Tensor:
        """Back-projection (..., N, N) of sinograms (..., K, D): the exact transpose."""
        k, d = self.angles.numel(), self.detectors
        if y.shape[-2:] != (k, d):
            raise ValueError(f"`y` must end in ({k}, {d}) (angles, detectors), got {y.shape}.")
        _, at = self._matrix(y.dtype, y.device)
        lead = y.shape[:-2]
        out = (at @ y.reshape(-1, k * d).T).T
        return out.reshape(*lead, self.size, self.size)


def _ramp(n_det: int, filter_name: str, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Frequency response of the discrete ramp filter on a zero-padded grid.

    The Ram-Lak spatial kernel of Kak & Slaney (Principles of Computerized Tomographic Imaging,
    1988, eq. 3.61): h(0) = 1/4, h(n) = -1/(pi n)^2 for odd n, 0 for even n (unit spacing).
    """
    pad = 2 ** math.ceil(math.log2(2 * n_det))
    n = torch.cat([torch.arange(0, pad // 2 + 1), torch.arange(-(pad // 2) + 1, 0)])
    h = torch.zeros(pad, dtype=torch.float64)
    h[n == 0] = 0.25
    odd = n % 2 == 1
    h[odd] = -1.0 / (math.pi * n[odd].double()) ** 2
    resp = torch.fft.fft(h).real
    if filter_name == "hann":
        f = torch.fft.fftfreq(pad, dtype=torch.float64)
        resp = resp * (0.5 + 0.5 * torch.cos(2 * math.pi * f))
    elif filter_name != "ramp":
        raise ValueError(f"`filter_name` must be 'ramp' or 'hann', got {filter_name!r}.")
    return resp.to(device=device, dtype=dtype)


def fbp(op: ParallelBeamCT, sinogram: Tensor, *, filter_name: str = "ramp") -> Tensor:
    """Filtered back-projection: ``(pi / K) A^T (h * p)`` with the ramp filter h.

    Args:
        op: the geometry that made ``sinogram``.
        sinogram: (..., K, D).
        filter_name: ``"ramp"`` (Ram-Lak) or ``"hann"`` (ramp times a Hann window).

    Returns:
        (..., N, N) images. With angles covering [0, pi) this inverts the Radon transform up
        to discretisation; for limited angles it is the usual streaky baseline.
    """
    d = op.detectors
    resp = _ramp(d, filter_name, sinogram.dtype, sinogram.device)
    spec = torch.fft.fft(sinogram, n=resp.numel(), dim=-1) * resp
    filtered = torch.fft.ifft(spec, dim=-1).real[..., :d]
    return op.A_adjoint(filtered) * (math.pi / op.angles.numel())


@dataclass(frozen=True, eq=False)
class CartesianMRI(LinearOperator):
    """Single-coil Cartesian MRI: ``y = M F x`` with the orthonormal FFT F.

    Images x are real (..., H, W) for ``dims=2`` (every slice its own 2-D FFT) or (..., Z, H, W)
    for ``dims=3``; k-space y is (..., *S, 2), real and imaginary parts stacked, zero where
    ``mask`` is 0. Since F is unitary and M a 0/1 projection, ``A_adjoint(y) = Re F^H M y`` is
    exact and ``A_dagger`` is the zero-filled reconstruction.

    Attributes:
        mask: 0/1 tensor broadcastable to the k-space grid (*S).
        dims: 2 or 3.
    """

    mask: Tensor
    dims: int = 2

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise ValueError(f"`dims` must be 2 or 3, got {self.dims}.")

    def _axes(self) -> tuple[int, ...]:
        return tuple(range(-self.dims, 0))

    def A(self, x: Tensor) -> Tensor:
        """Masked k-space (..., *S, 2) of real images (..., *S)."""
        if x.is_complex():
            raise ValueError("`x` must be real; stack complex images as separate samples.")
        k = torch.fft.fftn(x, dim=self._axes(), norm="ortho") * self.mask.to(x.device, x.dtype)
        return torch.view_as_real(k)

    def A_adjoint(self, y: Tensor) -> Tensor:
        """Real part of the zero-filled inverse FFT: (..., *S, 2) -> (..., *S)."""
        if y.shape[-1] != 2:
            raise ValueError(f"`y` must end in 2 (real, imaginary), got {tuple(y.shape)}.")
        k = torch.view_as_complex(y.contiguous()) * self.mask.to(y.device, y.dtype)
        return torch.fft.ifftn(k, dim=self._axes(), norm="ortho").real

    def A_dagger(self, y: Tensor, **kwargs) -> Tensor:  # noqa: D102
        return self.A_adjoint(y)


def uniform_mask(
    shape: tuple[int, ...], acceleration: float, *, center_fraction: float = 0.08
) -> Tensor:
    """Equispaced 1-D Cartesian mask: every ``acceleration``-th phase-encoding line.

    Lines are columns (the last axis of ``shape``) at the FFT's native (uncentred) frequency
    order, plus the ``center_fraction`` lowest frequencies (fastMRI's ``EquispacedMaskFunc``
    convention). Returns a float 0/1 tensor of ``shape`` (H, W) or (Z, H, W); for 3-D the
    same lines are kept for every z (per-slice 2-D acquisitions).
    """
    if acceleration < 1:
        raise ValueError(f"`acceleration` must be >= 1, got {acceleration}.")
    w = shape[-1]
    cols = torch.zeros(w)
    cols[:: max(1, int(round(acceleration)))] = 1
    freq = torch.fft.fftfreq(w).abs()
    n_center = int(round(center_fraction * w))
    if n_center:
        cols[torch.argsort(freq)[:n_center]] = 1
    return cols.expand(shape).clone()


def gaussian_mask(
    shape: tuple[int, ...],
    acceleration: float,
    *,
    sigma_fraction: float = 0.3,
    center_fraction: float = 0.04,
    two_d: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random Cartesian mask with Gaussian density around the k-space centre.

    With ``two_d=False`` whole columns (1-D lines) are drawn; with ``two_d=True`` points of the
    last two axes (phase encodes of a 3-D acquisition, or 2-D random sampling). About
    ``1 / acceleration`` of the lines/points are kept, without replacement, with probability
    proportional to ``exp(-f^2 / (2 sigma^2))`` at frequency f (in cycles per sample, sigma =
    ``sigma_fraction`` x 0.5), and the ``center_fraction`` lowest frequencies always.
    """
    if acceleration < 1:
        raise ValueError(f"`acceleration` must be >= 1, got {acceleration}.")
    sig = sigma_fraction * 0.5
    if two_d:
        fy = torch.fft.fftfreq(shape[-2])[:, None]
        fx = torch.fft.fftfreq(shape[-1])[None, :]
        f2 = (fy**2 + fx**2).flatten()
    else:
        f2 = torch.fft.fftfreq(shape[-1]) ** 2
    n = f2.numel()
    keep = max(1, int(round(n / acceleration)))
    n_center = int(round(center_fraction * n))
    chosen = torch.zeros(n)
    chosen[torch.argsort(f2)[:n_center]] = 1
    prob = torch.exp(-f2 / (2 * sig**2)) * (1 - chosen)
    rest = keep - n_center
    if rest > 0 and prob.sum() > 0:
        pick = torch.multinomial(prob, min(rest, int((prob > 0).sum())), generator=generator)
        chosen[pick] = 1
    pattern = chosen.reshape(shape[-2:]) if two_d else chosen
    return pattern.expand(shape).clone()


@dataclass(frozen=True)
class Identity(LinearOperator):
    """y = x: the forward model of denoising."""

    def A(self, x):  # noqa: D102
        return x

    def A_adjoint(self, y):  # noqa: D102
        return y

    def A_dagger(self, y, **kwargs):  # noqa: D102
        return y


def random_pixel_mask(
    shape: tuple[int, ...],
    keep: float,
    *,
    per_band: bool = True,
    generator: torch.Generator | None = None,
) -> Mask:
    """Completion operator keeping a random fraction ``keep`` of the entries of (C, H, W).

    With ``per_band`` each band loses its own pixels (DDS2M's completion setting); otherwise
    whole spectra are missing at the same pixels. Returns diffcore's ``Mask``.
    """
    if not 0 < keep <= 1:
        raise ValueError(f"`keep` must be in (0, 1], got {keep}.")
    if len(shape) != 3:
        raise ValueError(f"`shape` must be (C, H, W), got {shape}.")
    draw = shape if per_band else (1, *shape[1:])
    m = (torch.rand(draw, generator=generator) < keep).to(torch.float32)
    return Mask(m.expand(shape).clone())


@dataclass(frozen=True, eq=False)
class SpatialDownsample(LinearOperator):
    """Spatial super-resolution model: Gaussian blur then decimation by ``factor``.

    (B, C, H, W) -> (B, C, H/f, W/f). The blur is circular (diffcore's ``Blur``), so the
    adjoint is zero-filled upsampling followed by the flipped blur, exactly.

    Attributes:
        factor: decimation factor.
        sigma: blur std in pixels (0 for pure decimation).
    """

    factor: int = 2
    sigma: float = 1.0

    def _blur(self) -> Blur | None:
        return Blur.gaussian(self.sigma) if self.sigma > 0 else None

    def A(self, x: Tensor) -> Tensor:  # noqa: D102
        f = self.factor
        if x.ndim != 4 or x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"`x` must be (B, C, H, W) with H, W multiples of {f}, got {x.shape}")
        b = self._blur()
        xb = b.A(x) if b is not None else x
        return xb[..., ::f, ::f]

    def A_adjoint(self, y: Tensor) -> Tensor:  # noqa: D102
        f = self.factor
        up = y.new_zeros(*y.shape[:-2], y.shape[-2] * f, y.shape[-1] * f)
        up[..., ::f, ::f] = y
        b = self._blur()
        return b.A_adjoint(up) if b is not None else up

"""Linear forward operators y = A x for inverse problems, with adjoints and pseudo-inverses.

Semantics follow deepinv's ``LinearPhysics``: ``A(x)``, ``A_adjoint(y)`` and ``A_dagger(y)``
(the minimum-norm least-squares solution), so that ``<A x, y> == <x, A^T y>`` (see
:func:`adjointness_error`). The same interface carries the CT and MRI operators of
difflab-medical. Every operator acts on batches (B, *S) and keeps dtype and device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


class LinearOperator:
    """Base class of linear operators.

    Subclasses implement ``A`` and ``A_adjoint``; ``A_dagger`` defaults to conjugate gradients
    on the normal equations.
    """

    def A(self, x: Tensor) -> Tensor:
        """Forward map x (B, *S) -> y (B, *M)."""
        raise NotImplementedError

    def A_adjoint(self, y: Tensor) -> Tensor:
        """Adjoint map y (B, *M) -> (B, *S)."""
        raise NotImplementedError

    def A_dagger(self, y: Tensor, *, steps: int = 100, tol: float = 1e-10) -> Tensor:
        """Least-squares solution of A x = y with the least norm.

        Conjugate gradients on A^T A x = A^T y, started at 0, which keeps the iterate in the
        row space.
        """
        return conjugate_gradient(
            lambda v: self.A_adjoint(self.A(v)), self.A_adjoint(y), steps=steps, tol=tol
        )

    def __call__(self, x: Tensor) -> Tensor:
        """Same as ``A(x)``."""
        return self.A(x)


def conjugate_gradient(
    apply: Callable[[Tensor], Tensor], b: Tensor, *, steps: int = 100, tol: float = 1e-10
) -> Tensor:
    """Solve ``apply(x) = b`` per sample for a symmetric positive (semi-)definite ``apply``.

    Batched conjugate gradients from x = 0; stops when every residual norm is below ``tol``
    times its ``|b|``, or after ``steps`` iterations.

    Args:
        apply: the linear map, (B, *S) -> (B, *S).
        b: (B, *S) right-hand sides.
        steps: iteration budget.
        tol: relative residual tolerance.
    """
    tiny = torch.finfo(b.dtype).tiny
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = _dot(r, r)
    for _ in range(steps):
        ap = apply(p)
        alpha = rs / _dot(p, ap).clamp_min(tiny)
        x = x + _bcast(alpha, x) * p
        r = r - _bcast(alpha, x) * ap
        rs_new = _dot(r, r)
        if bool((rs_new <= tol**2 * _dot(b, b).clamp_min(tiny)).all()):
            break
        p = r + _bcast(rs_new / rs.clamp_min(tiny), x) * p
        rs = rs_new
    return x


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).flatten(1).sum(1)


def _bcast(c: Tensor, like: Tensor) -> Tensor:
    return c.reshape((-1,) + (1,) * (like.ndim - 1))


def adjointness_error(op: LinearOperator, x: Tensor, y: Tensor) -> float:
    """Relative adjointness error, about 0 for a correct adjoint.

    ``|<A x, y> - <x, A^T y>| / (|<A x, y>| + eps)``, as deepinv's ``adjointness_test``.
    """
    lhs = float(_dot(op.A(x), y).sum())
    rhs = float(_dot(x, op.A_adjoint(y)).sum())
    return abs(lhs - rhs) / (abs(lhs) + torch.finfo(x.dtype).eps)


@dataclass(frozen=True, eq=False)
class Mask(LinearOperator):
    """Inpainting / random-pixel completion.

    ``y = m * x`` with a 0/1 mask broadcastable to x. Self-adjoint; the pseudo-inverse is the
    mask itself.
    """

    mask: Tensor

    def A(self, x):  # noqa: D102
        return x * self.mask.to(x.dtype)

    def A_adjoint(self, y):  # noqa: D102
        return y * self.mask.to(y.dtype)

    def A_dagger(self, y, **kwargs):  # noqa: D102
        return y * self.mask.to(y.dtype)


@dataclass(frozen=True, eq=False)
class MatrixOperator(LinearOperator):
    """A dense matrix: ``y = x_flat @ M^T`` for an (M, N) matrix.

    Random Gaussian measurements are ``MatrixOperator.random(m, n, generator=...)`` (entries
    N(0, 1/m)).
    """

    matrix: Tensor

    @classmethod
    def random(
        cls, m: int, n: int, *, generator: torch.Generator | None = None, dtype=torch.float32
    ) -> MatrixOperator:
        """Random Gaussian measurement matrix (m, n) with N(0, 1/m) entries."""
        return cls(torch.randn(m, n, generator=generator, dtype=dtype) / m**0.5)

    def A(self, x):  # noqa: D102
        if x[0].numel() != self.matrix.shape[1]:
            raise ValueError(
                f"`x` has {x[0].numel()} entries per sample, the matrix expects "
                f"{self.matrix.shape[1]}"
            )
        return x.flatten(1) @ self.matrix.to(x.dtype).T

    def A_adjoint(self, y):  # noqa: D102
        return y @ self.matrix.to(y.dtype)

    def A_dagger(self, y, **kwargs):  # noqa: D102
        return y @ torch.linalg.pinv(self.matrix.to(y.dtype)).T


@dataclass(frozen=True)
class Downsample(LinearOperator):
    """Average pooling by ``factor``: (B, C, H, W) -> (B, C, H/f, W/f).

    The adjoint spreads each value evenly over its block (divided by f^2).
    """

    factor: int = 2

    def A(self, x):  # noqa: D102
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ValueError(
                f"H and W must be multiples of factor={self.factor}, got {tuple(x.shape)}"
            )
        return F.avg_pool2d(x, self.factor)

    def A_adjoint(self, y):  # noqa: D102
        return F.interpolate(y, scale_factor=self.factor, mode="nearest") / self.factor**2

    def A_dagger(self, y, **kwargs):  # noqa: D102
        return F.interpolate(y, scale_factor=self.factor, mode="nearest")


@dataclass(frozen=True, eq=False)
class Blur(LinearOperator):
    """Blur: each channel of (B, C, H, W) convolved with a 2-D ``kernel`` (kh, kw).

    Circular padding, so the adjoint is the convolution with the flipped kernel.
    """

    kernel: Tensor

    @classmethod
    def gaussian(cls, sigma: float, size: int | None = None) -> Blur:
        """Normalised Gaussian kernel of std ``sigma`` pixels (size 2 ceil(3 sigma) + 1)."""
        size = size or 2 * int(torch.tensor(3 * sigma).ceil()) + 1
        r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
        g = torch.exp(-(r**2) / (2 * sigma**2))
        k = g[:, None] * g[None, :]
        return cls(k / k.sum())

    def _conv(self, x: Tensor, kernel: Tensor) -> Tensor:
        c = x.shape[1]
        kh, kw = kernel.shape
        pad = (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2)
        w = kernel.to(x.dtype).expand(c, 1, kh, kw)
        return F.conv2d(F.pad(x, pad, mode="circular"), w, groups=c)

    def A(self, x):  # noqa: D102
        return self._conv(x, self.kernel)

    def A_adjoint(self, y):  # noqa: D102
        k = torch.flip(self.kernel, dims=(0, 1))
        kh, kw = k.shape
        c = y.shape[1]
        # the flipped kernel with the mirrored padding split is the exact adjoint
        pad = (kw - 1 - kw // 2, kw // 2, kh - 1 - kh // 2, kh // 2)
        w = k.to(y.dtype).expand(c, 1, kh, kw)
        return F.conv2d(F.pad(y, pad, mode="circular"), w, groups=c)

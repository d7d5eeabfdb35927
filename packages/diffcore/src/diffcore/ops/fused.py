"""Fused solver updates: ``sum_k c_k x_k`` in one pass over memory.

A multistep solver step (DPM-Solver++(2M/3M), UniPC) is a linear combination of the state and a
few stored predictions with per-sample coefficients. In eager PyTorch that is one kernel launch
and one full read/write of the state per term; the Triton kernel reads every input once and
writes once. The torch twin is the reference and the default off CUDA.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._dispatch import choose_backend

MAX_TERMS = 4  # the kernel's fixed number of input pointers


def _coefficients(coeffs: Sequence[Tensor | float], like: Tensor) -> Tensor:
    """(n_terms, B) coefficient table in the accumulation dtype."""
    acc = torch.float64 if like.dtype == torch.float64 else torch.float32
    b = like.shape[0] if like.ndim else 1
    rows = []
    for c in coeffs:
        c = torch.as_tensor(c, dtype=acc, device=like.device).reshape(-1)
        if c.numel() not in (1, b):
            raise ValueError(
                f"a coefficient must be a scalar or have shape ({b},), got {tuple(c.shape)}"
            )
        rows.append(c.expand(b))
    return torch.stack(rows)


def lincomb_reference(coeffs: Sequence[Tensor | float], tensors: Sequence[Tensor]) -> Tensor:
    """The torch twin of :func:`lincomb` (accumulates in float32, or float64 for float64)."""
    like = tensors[0]
    acc = torch.float64 if like.dtype == torch.float64 else torch.float32
    b = like.shape[0] if like.ndim else 1
    shape = (-1,) + (1,) * (like.ndim - 1)
    out: Tensor | None = None
    for c, t in zip(coeffs, tensors, strict=True):
        if isinstance(c, float | int):  # a host scalar: no tensor to make
            term = t.to(acc) * c
            out = term if out is None else out + term
            continue
        c = torch.as_tensor(c, dtype=acc, device=like.device)
        if c.numel() not in (1, b):
            raise ValueError(
                f"a coefficient must be a scalar or have shape ({b},), got {tuple(c.shape)}"
            )
        term = (c.reshape(shape) if c.numel() > 1 else c.reshape(())) * t.to(acc)
        out = term if out is None else out + term
    assert out is not None
    return out.to(like.dtype)


def lincomb(
    coeffs: Sequence[Tensor | float], tensors: Sequence[Tensor], *, backend: str = "auto"
) -> Tensor:
    """``sum_k coeffs[k] * tensors[k]`` with per-sample coefficients.

    Args:
        coeffs: n scalars or (B,) tensors (one coefficient per sample).
        tensors: n tensors of the same shape (B, *S), dtype and device.
        backend: ``"auto"`` (Triton on CUDA), ``"torch"`` or ``"triton"``.

    Returns:
        (B, *S) in the inputs' dtype; accumulation in float32 (float64 for float64 inputs).

    >>> x = torch.ones(2, 3)
    >>> lincomb([2.0, torch.tensor([1.0, -1.0])], [x, x])[:, 0]
    tensor([3., 1.])
    """
    if not 1 <= len(tensors) == len(coeffs):
        raise ValueError(
            f"need as many coefficients as tensors (at least one), got {len(coeffs)} and "
            f"{len(tensors)}"
        )
    like = tensors[0]
    for t in tensors[1:]:
        if t.shape != like.shape or t.dtype != like.dtype or t.device != like.device:
            raise ValueError(
                "all tensors must share shape, dtype and device; got "
                f"{tuple(like.shape)}/{like.dtype}/{like.device} and "
                f"{tuple(t.shape)}/{t.dtype}/{t.device}"
            )
    if (
        choose_backend(backend, like.device) == "torch"
        or len(tensors) > MAX_TERMS
        or like.ndim == 0
    ):
        return lincomb_reference(coeffs, tensors)
    import triton

    from .triton._fused import lincomb_kernel

    table = _coefficients(coeffs, like).contiguous()
    ins = [t.contiguous() for t in tensors]
    ins += [ins[0]] * (MAX_TERMS - len(ins))
    out = torch.empty_like(ins[0])
    numel = out.numel()
    if numel == 0:
        return out
    block = 1024
    grid = (triton.cdiv(numel, block),)
    lincomb_kernel[grid](
        out,
        *ins,
        table,
        numel,
        numel // like.shape[0],
        like.shape[0],
        N_TERMS=len(tensors),
        BLOCK=block,
    )
    return out

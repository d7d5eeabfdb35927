"""Triton kernel of `diffcore.ops.fused.lincomb`: one pass over memory for a solver update."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def lincomb_kernel(
    out_ptr,
    t0_ptr,
    t1_ptr,
    t2_ptr,
    t3_ptr,
    c_ptr,  # (N_TERMS, B) coefficients, float32 or float64
    numel,
    per_sample,  # elements per batch row
    batch,
    N_TERMS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """out[i] = sum_k c[k, row(i)] * t_k[i] over contiguous tensors, row(i) = i // per_sample."""
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    row = offs // per_sample
    acc = tl.load(c_ptr + row, mask=mask, other=0.0) * tl.load(t0_ptr + offs, mask=mask, other=0.0)
    if N_TERMS > 1:
        c1 = tl.load(c_ptr + batch + row, mask=mask, other=0.0)
        acc += c1 * tl.load(t1_ptr + offs, mask=mask, other=0.0)
    if N_TERMS > 2:
        c2 = tl.load(c_ptr + 2 * batch + row, mask=mask, other=0.0)
        acc += c2 * tl.load(t2_ptr + offs, mask=mask, other=0.0)
    if N_TERMS > 3:
        c3 = tl.load(c_ptr + 3 * batch + row, mask=mask, other=0.0)
        acc += c3 * tl.load(t3_ptr + offs, mask=mask, other=0.0)
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=mask)

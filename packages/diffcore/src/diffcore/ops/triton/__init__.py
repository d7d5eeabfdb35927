"""Triton fast path of `diffcore.ops` (imported lazily, only when that backend is chosen).

The launchers share the signature and results of the torch twin in `diffcore.ops._reference`.
On CPU tensors they run only under Triton's interpreter (``TRITON_INTERPRET=1`` set before
triton is imported), which is how the tests check the kernels without a GPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import triton
from torch import Tensor

from ._kernels import SENTINEL, knn_kernel, radius_kernel

__all__ = ["INTERPRETED", "MAX_K", "knn_search", "radius_search"]

# True when triton built these kernels for its CPU interpreter (TRITON_INTERPRET=1 at import).
INTERPRETED = not isinstance(knn_kernel, triton.runtime.JITFunction)
# Largest k the k-nearest kernel takes: its per-row buffer of next_pow2(k) pairs lives in
# registers beside a (BLOCK_M, BLOCK_N) tile; past this the torch twin is the better choice.
MAX_K = 128
_KNN_BLOCK_M = 32
_KNN_BLOCK_N = 64
_RADIUS_BLOCK_M = 32
_RADIUS_BLOCK_N = 128
_NUM_WARPS = 4


@contextlib.contextmanager
def _on_device(device: torch.device) -> Iterator[None]:
    if device.type == "cuda":
        with torch.cuda.device(device):
            yield
    else:
        yield


def _ranges(lo: Tensor, hi: Tensor, exclude: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    lo32 = lo.to(torch.int32).contiguous()
    hi32 = hi.to(torch.int32).contiguous()
    ex32 = lo32 if exclude is None else exclude.to(torch.int32).contiguous()
    return lo32, hi32, ex32


def _check_sizes(m: int, n: int, slack: int) -> None:
    if max(m, n) >= SENTINEL - slack:
        raise ValueError(
            f"the triton backend indexes points with int32 and takes fewer than "
            f"{SENTINEL - slack} points, got {max(m, n)}; use backend='torch'."
        )


@torch.no_grad()
def knn_search(
    q: Tensor, x: Tensor, lo: Tensor, hi: Tensor, k: int, *, exclude: Tensor | None, norm: int
) -> tuple[Tensor, Tensor]:
    """Triton twin of `diffcore.ops._reference.knn_search` (same arguments and results)."""
    if k > MAX_K:
        raise ValueError(f"the triton k-nearest kernel takes k <= {MAX_K}, got k={k}.")
    m, n = q.shape[0], x.shape[0]
    kp = triton.next_power_of_2(k)
    _check_sizes(m, n, kp)
    dist = q.new_full((m, k), float("inf"))
    idx = torch.full((m, k), -1, dtype=torch.long, device=q.device)
    if m == 0 or n == 0:
        return dist, idx
    q, x = q.contiguous(), x.contiguous()
    lo32, hi32, ex32 = _ranges(lo, hi, exclude)
    out_d = torch.empty((m, kp), dtype=q.dtype, device=q.device)
    out_i = torch.empty((m, kp), dtype=torch.int32, device=q.device)
    grid = (triton.cdiv(m, _KNN_BLOCK_M),)
    with _on_device(q.device):
        knn_kernel[grid](
            q,
            x,
            lo32,
            hi32,
            ex32,
            out_d,
            out_i,
            m,
            n,
            q.shape[1],
            q.stride(0),
            x.stride(0),
            K=k,
            KP=kp,
            HAS_EXCLUDE=exclude is not None,
            NORM=norm,
            BLOCK_M=_KNN_BLOCK_M,
            BLOCK_N=_KNN_BLOCK_N,
            num_warps=_NUM_WARPS,
            enable_fp_fusion=False,
        )
    found_i = out_i[:, :k].long()
    found = (found_i >= 0) & (found_i < n)
    # The kernel keeps an unsorted set; order it by (distance, index), empty slots last.
    by_index, order = torch.sort(torch.where(found, found_i, n), dim=1, stable=True)
    by_dist = torch.where(found, out_d[:, :k], float("inf")).gather(1, order)
    dist, order = torch.sort(by_dist, dim=1, stable=True)
    idx = by_index.gather(1, order)
    idx = torch.where(idx < n, idx, -1)
    return dist, idx


@torch.no_grad()
def radius_search(
    q: Tensor,
    x: Tensor,
    lo: Tensor,
    hi: Tensor,
    r2: Tensor,
    max_num_neighbors: int | None,
    *,
    exclude: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Triton twin of `diffcore.ops._reference.radius_search` (same arguments and results)."""
    m, n = q.shape[0], x.shape[0]
    _check_sizes(m, n, 1)
    empty = torch.empty(0, dtype=torch.long, device=q.device)
    if m == 0 or n == 0:
        return empty, empty.clone()
    q, x = q.contiguous(), x.contiguous()
    lo32, hi32, ex32 = _ranges(lo, hi, exclude)
    r2 = r2.reshape(1).to(q.dtype)
    cap = SENTINEL if max_num_neighbors is None else min(max_num_neighbors, SENTINEL)
    counts = torch.empty(m, dtype=torch.int32, device=q.device)
    grid = (triton.cdiv(m, _RADIUS_BLOCK_M),)
    common = {
        "HAS_EXCLUDE": exclude is not None,
        "BLOCK_M": _RADIUS_BLOCK_M,
        "BLOCK_N": _RADIUS_BLOCK_N,
        "num_warps": _NUM_WARPS,
        "enable_fp_fusion": False,
    }
    dims = (m, n, q.shape[1], q.stride(0), x.stride(0), cap)
    with _on_device(q.device):
        radius_kernel[grid](
            q, x, lo32, hi32, ex32, r2, counts, lo32, counts, *dims, FILL=False, **common
        )
        counts64 = counts.long()
        total = int(counts64.sum())
        if total == 0:
            return empty, empty.clone()
        offsets = torch.cumsum(counts64, 0) - counts64
        cols = torch.empty(total, dtype=torch.int32, device=q.device)
        radius_kernel[grid](
            q, x, lo32, hi32, ex32, r2, counts, offsets, cols, *dims, FILL=True, **common
        )
    rows = torch.repeat_interleave(torch.arange(m, device=q.device), counts64, output_size=total)
    return rows, cols.long()

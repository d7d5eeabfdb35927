"""Triton kernels: blocked distance tiles with exact k-nearest and radius selection.

Each program owns BLOCK_M query rows and walks the union of their candidate ranges in tiles of
BLOCK_N points. A tile's distances are accumulated coordinate by coordinate in the same order as
the torch twin (launch with ``enable_fp_fusion=False`` so no multiply-add is contracted), so
both backends agree bit for bit.

k-nearest: every row keeps an unsorted buffer of its K best (distance, index) pairs, ordered
lexicographically so ties go to the lower index. A tile is merged by repeatedly moving each
row's best remaining candidate into the buffer, over its worst entry, while any row improves;
that is at most K rounds per tile and usually none once the buffer is good.

radius: one pass counts hits per row (capped), a second pass, given each row's output offset,
writes the lowest-indexed hits in index order using a running prefix sum over the tiles.
"""

import triton
import triton.language as tl

# Index sentinel: larger than any point index the launchers accept (they require N < SENTINEL -
# KP); the buffer's empty slots count down from it so every slot holds a distinct key.
SENTINEL = 2**31 - 1
_SENT = tl.constexpr(SENTINEL)


@triton.jit
def _tile_distance(
    q_ptr,
    x_ptr,
    rows,
    cols,
    row_ok,
    col_ok,
    D,
    stride_q,
    stride_x,
    NORM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """(BLOCK_M, BLOCK_N) distances, summed over coordinates in order."""
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=q_ptr.dtype.element_ty)
    q_base = q_ptr + rows.to(tl.int64) * stride_q
    x_base = x_ptr + cols.to(tl.int64) * stride_x
    for j in range(D):
        qj = tl.load(q_base + j, mask=row_ok, other=0.0)
        xj = tl.load(x_base + j, mask=col_ok, other=0.0)
        diff = qj[:, None] - xj[None, :]
        if NORM == 2:
            acc = acc + diff * diff
        else:
            acc = acc + tl.abs(diff)
    return acc


@triton.jit
def _lex_less(a_d, a_i, b_d, b_i):
    """(a_d, a_i) < (b_d, b_i) in lexicographic order, elementwise."""
    return (a_d < b_d) | ((a_d == b_d) & (a_i < b_i))


@triton.jit
def _row_lex_min(d, i):
    """Per row, the lexicographically smallest (distance, index) pair."""
    best_d = tl.min(d, axis=1)
    best_i = tl.min(tl.where(d == best_d[:, None], i, _SENT), axis=1)
    return best_d, best_i


@triton.jit
def _row_lex_max(d, i):
    """Per row, the lexicographically largest (distance, index) pair."""
    worst_d = tl.max(d, axis=1)
    worst_i = tl.max(tl.where(d == worst_d[:, None], i, -_SENT), axis=1)
    return worst_d, worst_i


@triton.jit
def _row_ranges(lo_ptr, hi_ptr, rows, row_ok):
    """Each row's candidate range and the union [start, stop) over the block."""
    lo = tl.load(lo_ptr + rows, mask=row_ok, other=_SENT)
    hi = tl.load(hi_ptr + rows, mask=row_ok, other=0)
    return lo, hi, tl.min(lo, axis=0), tl.max(hi, axis=0)


@triton.jit
def knn_kernel(
    q_ptr,
    x_ptr,
    lo_ptr,
    hi_ptr,
    ex_ptr,
    out_d_ptr,
    out_i_ptr,
    M,
    N,
    D,
    stride_q,
    stride_x,
    K: tl.constexpr,
    KP: tl.constexpr,
    HAS_EXCLUDE: tl.constexpr,
    NORM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Write each query's K best (distance, index) pairs, unsorted, to out (M, KP).

    Slots K..KP-1 are padding (distance -inf, index < 0); empty real slots keep distance +inf
    and an index >= SENTINEL - KP.
    """
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    lo, hi, start, stop = _row_ranges(lo_ptr, hi_ptr, rows, row_ok)
    if HAS_EXCLUDE:
        ex = tl.load(ex_ptr + rows, mask=row_ok, other=-1)
    dtype = q_ptr.dtype.element_ty
    slot = tl.arange(0, KP)
    real = (slot < K)[None, :] & (rows >= 0)[:, None]
    best_d = tl.where(real, float("inf"), float("-inf")).to(dtype)
    best_i = tl.where(real, _SENT - slot[None, :], -1 - slot[None, :])
    inf_tile = tl.full((BLOCK_M, BLOCK_N), float("inf"), dtype)
    for c0 in range(start, stop, BLOCK_N):
        cols = c0 + tl.arange(0, BLOCK_N)
        ok = (cols[None, :] >= lo[:, None]) & (cols[None, :] < hi[:, None])
        if HAS_EXCLUDE:
            ok = ok & (cols[None, :] != ex[:, None])
        acc = _tile_distance(
            q_ptr,
            x_ptr,
            rows,
            cols,
            row_ok,
            cols < N,
            D,
            stride_q,
            stride_x,
            NORM,
            BLOCK_M,
            BLOCK_N,
        )
        worst_d, worst_i = _row_lex_max(best_d, best_i)
        keep = ok & _lex_less(acc, cols[None, :], worst_d[:, None], worst_i[:, None])
        tile_d = tl.where(keep, acc, inf_tile)
        tile_i = tl.where(keep, cols[None, :], _SENT)
        cand_d, cand_i = _row_lex_min(tile_d, tile_i)
        go = _lex_less(cand_d, cand_i, worst_d, worst_i)
        while tl.max(go.to(tl.int32), axis=0) > 0:
            hit = (best_d == worst_d[:, None]) & (best_i == worst_i[:, None]) & go[:, None]
            best_d = tl.where(hit, cand_d[:, None], best_d)
            best_i = tl.where(hit, cand_i[:, None], best_i)
            taken = (tile_i == cand_i[:, None]) & go[:, None]
            tile_d = tl.where(taken, inf_tile, tile_d)
            tile_i = tl.where(taken, _SENT, tile_i)
            worst_d, worst_i = _row_lex_max(best_d, best_i)
            cand_d, cand_i = _row_lex_min(tile_d, tile_i)
            go = _lex_less(cand_d, cand_i, worst_d, worst_i)
    offs = rows.to(tl.int64)[:, None] * KP + slot[None, :]
    tl.store(out_d_ptr + offs, best_d, mask=row_ok[:, None])
    tl.store(out_i_ptr + offs, best_i, mask=row_ok[:, None])


@triton.jit
def radius_kernel(
    q_ptr,
    x_ptr,
    lo_ptr,
    hi_ptr,
    ex_ptr,
    r2_ptr,
    count_ptr,
    offset_ptr,
    out_ptr,
    M,
    N,
    D,
    stride_q,
    stride_x,
    cap,
    HAS_EXCLUDE: tl.constexpr,
    FILL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Count (FILL=False) or write (FILL=True) each query's hits with distance^2 < r2.

    Only the first `cap` hits of a row in index order count. With FILL, row i writes its hit
    indices to out[offset[i]:offset[i] + count[i]] in ascending order.
    """
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    lo, hi, start, stop = _row_ranges(lo_ptr, hi_ptr, rows, row_ok)
    if HAS_EXCLUDE:
        ex = tl.load(ex_ptr + rows, mask=row_ok, other=-1)
    if FILL:
        offset = tl.load(offset_ptr + rows, mask=row_ok, other=0)
    r2 = tl.load(r2_ptr)
    found = tl.zeros((BLOCK_M,), dtype=tl.int32)
    for c0 in range(start, stop, BLOCK_N):
        cols = c0 + tl.arange(0, BLOCK_N)
        ok = (cols[None, :] >= lo[:, None]) & (cols[None, :] < hi[:, None])
        if HAS_EXCLUDE:
            ok = ok & (cols[None, :] != ex[:, None])
        acc = _tile_distance(
            q_ptr,
            x_ptr,
            rows,
            cols,
            row_ok,
            cols < N,
            D,
            stride_q,
            stride_x,
            2,
            BLOCK_M,
            BLOCK_N,
        )
        hits = (ok & (acc < r2)).to(tl.int32)
        if FILL:
            pos = found[:, None] + tl.cumsum(hits, axis=1) - 1
            write = (hits > 0) & (pos < cap)
            dst = out_ptr + offset[:, None] + pos
            tl.store(dst, cols[None, :] + tl.zeros_like(pos), mask=write)
        found = tl.minimum(found + tl.sum(hits, axis=1), cap)
    if not FILL:
        tl.store(count_ptr + rows, found, mask=row_ok)

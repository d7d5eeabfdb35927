"""Pure-torch reference twin of the neighbour searches: exact, blocked, any device.

Both searches take queries q (M, D), points x (N, D) and, for every query i, a half-open range
[lo[i], hi[i]) of candidate points (its graph, or its cloud); `exclude[i]` (or -1) names one
point to leave out (the query itself for graphs without self-loops). lo and hi must be
non-decreasing in i, which holds for sorted PyG batch vectors and padded point clouds.

Distances are defined by `pairwise_distance`: accumulated coordinate by coordinate, in order,
one rounding per operation. The Triton kernels use the same order (with FMA contraction off),
so both backends return the same neighbours, ties going to the lower index.

Query rows are processed in blocks whose (rows x candidate columns) matrix stays within a memory
budget, so no N x N matrix is ever built. For squared Euclidean distances a block is first
screened with one matrix product, |x_j|^2 - 2 q_i.x_j on coordinates centred in the block; a
bound on that expansion's rounding error (see `_screen_tolerance`) keeps every pair that could
be a neighbour, and the few survivors are then measured exactly. L1 distances are measured
exactly on the whole block.
"""

from __future__ import annotations

import bisect

import numpy as np
import torch
from torch import Tensor

# Working bytes per entry of a block's (rows x columns) matrix beyond one value of the dtype:
# validity and selection masks and comparison temporaries. Sizes blocks against the budget.
_MASK_BYTES = 4
# Bytes per surviving (row, column) pair: two int64 indices, gathered coordinates, distance and
# sort temporaries. Survivors are extracted in row groups of at most budget / _PAIR_BYTES.
_PAIR_BYTES = 96
# Multiple of (D + 2) unit roundoffs in the screening tolerance; the analysis needs 2D + 3.
_SCREEN_SLACK = 4


def pairwise_distance(a: Tensor, b: Tensor, norm: int = 2) -> Tensor:
    """Distances between broadcastable point sets, summed over coordinates in order.

    Args:
        a: (..., D) points.
        b: (..., D) points, broadcastable against `a` except in the last axis.
        norm: 2 for squared Euclidean distance, 1 for the L1 distance.

    Returns:
        dist: the broadcast shape of a[..., 0] and b[..., 0]. Differentiable when the inputs
            require grad; computed in place (cheaper) otherwise.
    """
    inplace = not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad))
    out: Tensor | None = None
    for j in range(a.shape[-1]):
        diff = a[..., j] - b[..., j]
        if norm == 2:
            term = diff.square_() if inplace else diff.square()
        else:
            term = diff.abs_() if inplace else diff.abs()
        if out is None:
            out = term
        elif inplace:
            out.add_(term)
        else:
            out = out + term
    if out is None:  # D == 0 is rejected by the public checks
        raise ValueError("points need at least one coordinate.")
    return out


def plan_blocks(lo: Tensor, hi: Tensor, max_entries: int) -> list[tuple[int, int, int, int]]:
    """Split query rows into blocks [a, b) with (b - a) * (hi[b-1] - lo[a]) <= max_entries.

    A single row whose range alone exceeds the budget still gets a block of its own.

    Returns:
        blocks: (a, b, c0, c1) per block: rows [a, b) and their candidate columns [c0, c1).
    """
    lo_np = lo.detach().cpu().numpy().astype(np.int64)
    hi_np = hi.detach().cpu().numpy().astype(np.int64)
    m = lo_np.shape[0]
    blocks = []
    a = 0
    while a < m:
        good, bad = a + 1, m + 1  # invariant: rows [a, good) fit (or good == a + 1); bad does not
        while bad - good > 1:
            mid = (good + bad) // 2
            cost = (mid - a) * max(int(hi_np[mid - 1] - lo_np[a]), 1)
            if cost <= max_entries:
                good = mid
            else:
                bad = mid
        blocks.append((a, good, int(lo_np[a]), int(hi_np[good - 1])))
        a = good
    return blocks


def _block_invalid(
    lo: Tensor, hi: Tensor, exclude: Tensor | None, c0: int, c1: int
) -> Tensor | None:
    """(rows, c1 - c0) mask of candidates outside each row's range or excluded; None if none."""
    rows = lo.shape[0]
    uniform = bool(lo[0] == c0) and bool(lo[-1] == c0) and bool(hi[0] == c1)
    invalid: Tensor | None = None
    if not uniform:
        cols = torch.arange(c0, c1, device=lo.device)
        invalid = (cols < lo[:, None]) | (cols >= hi[:, None])
    if exclude is not None:
        inside = (exclude >= c0) & (exclude < c1)
        if bool(inside.any()):
            if invalid is None:
                invalid = torch.zeros(rows, c1 - c0, dtype=torch.bool, device=lo.device)
            r = inside.nonzero()[:, 0]
            invalid[r, exclude[r] - c0] = True
    return invalid


def row_ranks(rows: Tensor, n_rows: int) -> Tensor:
    """Position of each entry within its row, for `rows` sorted ascending."""
    counts = torch.bincount(rows, minlength=n_rows)
    starts = torch.cumsum(counts, 0) - counts
    return torch.arange(rows.shape[0], device=rows.device) - starts[rows]


def _ieee_products(t: Tensor) -> bool:
    """Whether float32 matrix products on `t`'s device are plain IEEE float32 (no TF32/bf16)."""
    try:
        matmul = getattr(
            torch.backends.cuda if t.is_cuda else torch.backends.mkldnn, "matmul", None
        )
        setting = getattr(matmul, "fp32_precision", "none")  # the newer per-backend API
        if setting != "none":
            return setting == "ieee"
        if torch.get_float32_matmul_precision() != "highest":
            return False
        return not (t.is_cuda and torch.backends.cuda.matmul.allow_tf32)
    except RuntimeError:  # torch refuses to read mixed legacy / new settings: assume the worst
        return False


def _unit_roundoff(t: Tensor) -> float:
    """Unit roundoff of the matrix products torch will run for `t`'s dtype and device."""
    if t.dtype == torch.float64:
        return 2.0**-53
    # With TF32 or bfloat16 products allowed, assume bfloat16's 8-bit mantissa.
    return 2.0**-24 if _ieee_products(t) else 2.0**-8


def _screen_tolerance(qc: Tensor, xc: Tensor, extra: Tensor | float = 0.0) -> Tensor:
    """Per-row bound on |screen_ij + |qc_i|^2 - dist_ij|, with dist from `pairwise_distance`.

    With a = qc_i and b = xc_j (centred in floating point), the screen value
    |b|^2 - 2 a.b errs by at most (D + 1) u (|a| + |b|)^2, centring moves the squared distance
    by at most 2 u (|a| + |b|)^2, and `pairwise_distance` errs by D u (|a| + |b|)^2: in all
    (2D + 3) u (|a| + |b|)^2 to first order. We use 4 (D + 2) u (|a| + max_j |b|)^2 (+ `extra`
    for the rounding of thresholds), generous enough for any summation order or FMA.
    """
    u = _unit_roundoff(qc)
    span = qc.norm(dim=1) + (xc.norm(dim=1).amax() if xc.shape[0] > 0 else 0.0)
    return _SCREEN_SLACK * (qc.shape[1] + 2) * u * (span * span + extra)


def _screen(qb: Tensor, xb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(rows, cols) values |xc_j|^2 - 2 qc_i.xc_j, with qc, xc centred on xb's mean."""
    center = xb.mean(dim=0)
    qc, xc = qb - center, xb - center
    screen = torch.addmm((xc * xc).sum(dim=1)[None, :], qc, xc.T, beta=1.0, alpha=-2.0)
    return screen, qc, xc


def count_per_row(mask: Tensor) -> Tensor:
    """(rows,) long number of True entries per row of a (rows, cols) bool mask.

    Summing the mask as uint8 into int32 is several times faster than `mask.sum(dim=1)`.
    """
    return mask.view(torch.uint8).sum(dim=1, dtype=torch.int32).long()


def _row_groups(keep: Tensor, max_pairs: int) -> list[tuple[int, int]]:
    """Consecutive row groups of `keep` (rows, cols) with at most max_pairs True entries each."""
    if int(keep.count_nonzero()) <= max_pairs:
        return [(0, keep.shape[0])]
    ends = torch.cumsum(count_per_row(keep), 0).tolist()
    groups, a, base = [], 0, 0
    while a < len(ends):
        b = max(bisect.bisect_right(ends, base + max_pairs, lo=a), a + 1)
        groups.append((a, b))
        base = ends[b - 1]
        a = b
    return groups


def _take_k(rows: Tensor, cols: Tensor, d: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Keep each row's k smallest (distance, column) pairs; return them with their ranks."""
    order = torch.argsort(cols, stable=True)
    rows, cols, d = rows[order], cols[order], d[order]
    order = torch.argsort(d, stable=True)
    rows, cols, d = rows[order], cols[order], d[order]
    order = torch.argsort(rows, stable=True)
    rows, cols, d = rows[order], cols[order], d[order]
    rank = row_ranks(rows, int(rows.max()) + 1 if rows.numel() else 0)
    keep = rank < k
    return rows[keep], cols[keep], d[keep], rank[keep]


def _knn_survivors(
    qb: Tensor, xb: Tensor, invalid: Tensor | None, k: int, norm: int
) -> tuple[Tensor, Tensor | None]:
    """(rows, cols) mask holding every candidate that may be among a row's k nearest.

    Returns the mask and, for L1, the exact distances of the block (None for L2, whose
    survivors are measured afterwards).
    """
    exact = norm != 2
    if exact:
        values = pairwise_distance(qb[:, None, :], xb[None, :, :], norm)
    else:
        values, qc, xc = _screen(qb, xb)
    if invalid is not None:
        values.masked_fill_(invalid, float("inf"))
    kk = min(k, xb.shape[0])
    kth = values.topk(kk, dim=1, largest=False, sorted=False).values.amax(dim=1)
    if not exact:
        # every true neighbour j has screen_j <= kth + 2 tol (see _screen_tolerance)
        kth = kth + 2 * _screen_tolerance(qc, xc)
    keep = values <= kth[:, None]
    if invalid is not None:
        keep &= ~invalid
    return keep, values if exact else None


@torch.no_grad()
def knn_search(
    q: Tensor,
    x: Tensor,
    lo: Tensor,
    hi: Tensor,
    k: int,
    *,
    exclude: Tensor | None,
    norm: int,
    memory_budget: int,
) -> tuple[Tensor, Tensor]:
    """The k nearest candidates of every query, ordered by (distance, index).

    Args:
        q: (M, D) queries.
        x: (N, D) points.
        lo: (M,) long, first candidate of each query (non-decreasing).
        hi: (M,) long, one past the last candidate of each query (non-decreasing).
        k: neighbours per query.
        exclude: (M,) long point index each query skips (-1 for none), or None.
        norm: 2 (squared Euclidean) or 1 (L1).
        memory_budget: bytes allowed for one block's working matrices.

    Returns:
        dist: (M, k) distances, +inf where a query has fewer than k candidates.
        idx: (M, k) long point indices, -1 where a query has fewer than k candidates.
    """
    m = q.shape[0]
    dist = q.new_full((m, k), float("inf"))
    idx = torch.full((m, k), -1, dtype=torch.long, device=q.device)
    if m == 0 or x.shape[0] == 0:
        return dist, idx
    per_entry = (2 if norm != 2 else 1) * q.element_size() + _MASK_BYTES
    max_pairs = max(memory_budget // _PAIR_BYTES, 1)
    for a, b, c0, c1 in plan_blocks(lo, hi, max(memory_budget // per_entry, 1)):
        if c1 <= c0:
            continue
        ex = None if exclude is None else exclude[a:b]
        invalid = _block_invalid(lo[a:b], hi[a:b], ex, c0, c1)
        keep, exact = _knn_survivors(q[a:b], x[c0:c1], invalid, k, norm)
        for g0, g1 in _row_groups(keep, max_pairs):
            rows, cols = keep[g0:g1].nonzero(as_tuple=True)
            if exact is not None:
                d = exact[g0 + rows, cols]
            else:
                d = pairwise_distance(q[a + g0 + rows], x[c0 + cols], norm)
            rows, cols, d, rank = _take_k(rows, cols, d, k)
            dist[a + g0 + rows, rank] = d
            idx[a + g0 + rows, rank] = cols + c0
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
    memory_budget: int,
) -> tuple[Tensor, Tensor]:
    """All candidates with squared distance < r2, at most the lowest-indexed `max_num_neighbors`.

    Args:
        q: (M, D) queries.
        x: (N, D) points.
        lo: (M,) long, first candidate of each query (non-decreasing).
        hi: (M,) long, one past the last candidate of each query (non-decreasing).
        r2: () squared radius in the dtype of q.
        max_num_neighbors: cap per query, or None for no cap.
        exclude: (M,) long point index each query skips (-1 for none), or None.
        memory_budget: bytes allowed for one block's working matrices.

    Returns:
        row: (E,) long query indices, ascending.
        col: (E,) long point indices, ascending within each query.
    """
    empty = torch.empty(0, dtype=torch.long, device=q.device)
    if q.shape[0] == 0 or x.shape[0] == 0:
        return empty, empty.clone()
    per_entry = q.element_size() + _MASK_BYTES
    max_pairs = max(memory_budget // _PAIR_BYTES, 1)
    out_rows, out_cols = [empty], [empty]
    for a, b, c0, c1 in plan_blocks(lo, hi, max(memory_budget // per_entry, 1)):
        if c1 <= c0:
            continue
        screen, qc, xc = _screen(q[a:b], x[c0:c1])
        # keep pairs whose screened squared distance may be below r2 (see _screen_tolerance)
        limit = r2 - (qc * qc).sum(dim=1) + _screen_tolerance(qc, xc, r2)
        keep = screen < limit[:, None]
        del screen
        ex = None if exclude is None else exclude[a:b]
        invalid = _block_invalid(lo[a:b], hi[a:b], ex, c0, c1)
        if invalid is not None:
            keep &= ~invalid
        for g0, g1 in _row_groups(keep, max_pairs):
            rows, cols = keep[g0:g1].nonzero(as_tuple=True)  # sorted by (row, col)
            hit = pairwise_distance(q[a + g0 + rows], x[c0 + cols], 2) < r2
            rows, cols = rows[hit], cols[hit]
            if max_num_neighbors is not None:
                fits = row_ranks(rows, g1 - g0) < max_num_neighbors
                rows, cols = rows[fits], cols[fits]
            out_rows.append(rows + a + g0)
            out_cols.append(cols + c0)
    return torch.cat(out_rows), torch.cat(out_cols)

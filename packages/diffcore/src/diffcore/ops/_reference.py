"""Pure-torch reference twin of the neighbour searches: exact, blocked, any device.

Both searches take queries q (M, D), points x (N, D) and, for every query i, a half-open range
[lo[i], hi[i]) of candidate points (its graph, or its cloud); `exclude[i]` (or -1) names one
point to leave out (the query itself for graphs without self-loops). lo and hi must be
non-decreasing in i, which holds for sorted PyG batch vectors and padded point clouds.

Query rows are processed in blocks whose (rows x candidate columns) distance matrix stays within
a memory budget, so no N x N matrix is ever built. Distances are accumulated coordinate by
coordinate, in order, with one rounding per operation; the Triton kernels use the same order
(with FMA contraction off), so both backends return the same neighbours.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# Working bytes per entry of a block's (rows x columns) matrix, beyond the distances themselves:
# one temporary per coordinate difference, the validity and selection masks, and comparison
# temporaries. Used only to size blocks against the caller's memory budget.
_KNN_MASK_BYTES = 6
_RADIUS_MASK_BYTES = 4


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


def _row_ranks(rows: Tensor, n_rows: int) -> Tensor:
    """Position of each entry within its row, for `rows` sorted ascending."""
    counts = torch.bincount(rows, minlength=n_rows)
    starts = torch.cumsum(counts, 0) - counts
    return torch.arange(rows.shape[0], device=rows.device) - starts[rows]


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
    per_entry = 2 * q.element_size() + _KNN_MASK_BYTES
    for a, b, c0, c1 in plan_blocks(lo, hi, max(memory_budget // per_entry, 1)):
        if c1 <= c0:
            continue
        d = pairwise_distance(q[a:b, None, :], x[None, c0:c1, :], norm)
        invalid = _block_invalid(
            lo[a:b], hi[a:b], None if exclude is None else exclude[a:b], c0, c1
        )
        if invalid is not None:
            d.masked_fill_(invalid, float("inf"))
        kk = min(k, c1 - c0)
        kth = d.topk(kk, dim=1, largest=False, sorted=False).values.amax(dim=1, keepdim=True)
        # The chosen set: everything strictly closer than the kk-th distance, plus the
        # lowest-indexed entries tied with it, so ties are broken by index exactly.
        chosen = d < kth
        tied = d == kth
        if invalid is not None:
            tied &= ~invalid
        need = kk - chosen.sum(dim=1)
        over = tied.sum(dim=1) > need
        if bool(over.any()):
            sub = tied[over]
            tied[over] = sub & (sub.cumsum(dim=1) <= need[over, None])
        chosen |= tied
        rows, cols = chosen.nonzero(as_tuple=True)  # sorted by (row, col)
        vals = d[rows, cols]
        order = torch.argsort(vals, stable=True)
        rows, cols, vals = rows[order], cols[order], vals[order]
        order = torch.argsort(rows, stable=True)
        rows, cols, vals = rows[order], cols[order], vals[order]
        rank = _row_ranks(rows, b - a)
        dist[a + rows, rank] = vals
        idx[a + rows, rank] = cols + c0
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
    per_entry = 2 * q.element_size() + _RADIUS_MASK_BYTES
    out_rows, out_cols = [empty], [empty]
    for a, b, c0, c1 in plan_blocks(lo, hi, max(memory_budget // per_entry, 1)):
        if c1 <= c0:
            continue
        d = pairwise_distance(q[a:b, None, :], x[None, c0:c1, :], 2)
        within = d < r2
        del d
        invalid = _block_invalid(
            lo[a:b], hi[a:b], None if exclude is None else exclude[a:b], c0, c1
        )
        if invalid is not None:
            within &= ~invalid
        if max_num_neighbors is not None:
            over = within.sum(dim=1) > max_num_neighbors
            if bool(over.any()):
                sub = within[over]
                within[over] = sub & (sub.cumsum(dim=1) <= max_num_neighbors)
        rows, cols = within.nonzero(as_tuple=True)
        out_rows.append(rows + a)
        out_cols.append(cols + c0)
    return torch.cat(out_rows), torch.cat(out_cols)

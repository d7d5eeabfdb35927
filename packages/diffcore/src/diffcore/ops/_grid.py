"""Exact neighbour search on a uniform cell grid, in pure torch, for points in <= 3 dimensions.

Same arguments and results as `diffcore.ops._reference` (whose docstring explains lo, hi and
exclude), but instead of every candidate of a query's range it only looks at points in the
3^D cells around the query's cell. It requires what both public callers guarantee: two
queries' ranges are either equal or disjoint (graphs; clouds).

Exactness. Cells are hypercubes of side h, indexed in float64. A point outside the 3^D block
around a query's cell is more than h away along some axis, so its distance exceeds h^2 (h for
L1), up to rounding far below `_CELL_PAD`. Hence:

- radius r: cells of side r * (1 + _CELL_PAD) see every pair closer than r;
- k nearest: if the k-th candidate (by distance, then index) is closer than
  (h / (1 + _CELL_PAD))^2, no point outside the block can precede it, so the candidates' top k is
  the exact answer. Queries that fail the test are retried with cells twice as large; queries
  whose block covers their whole range are exact by construction.

Distances of candidate pairs are computed with `pairwise_distance`, bit for bit as the brute
force, so both paths return the same neighbours. When the grid stops pruning (candidates close
to the whole range), the remaining queries go to the blocked brute force.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from . import _reference
from ._reference import pairwise_distance

MAX_DIM = 3
# Cells are this much (relative) larger than the radius they must cover: a margin for rounding
# in the float64 cell index and in the distance itself (both far below 1e-3 relative).
_CELL_PAD = 1e-3
# Keys are (segment, cell) packed into an int64; stay well inside its range.
_KEY_LIMIT = 2**62
# Bytes per candidate pair: indices (query, point, expansion temporaries, int64) and the
# gathered coordinates and distance. Sizes blocks against the memory budget.
_PAIR_BYTES = 96
# Per-query bytes when counting candidates: 3^(D-1) run keys and two search results (int64).
_COUNT_BYTES = 3 * 8 * 3 ** (MAX_DIM - 1)
# Above this fraction of the brute-force work, the dense blocked search is cheaper.
_DENSE_FRACTION = 0.2
# Mean points per k-nearest cell, in units of k (see _initial_knn_cell).
_CELL_FILL = 0.5
# Doublings of the k-nearest cell size before the remaining queries go to brute force.
_MAX_ROUNDS = 24


@dataclass(frozen=True)
class _Segments:
    """Which segment (graph, cloud) each query searches and each point belongs to (-1: none)."""

    query: Tensor  # (M,) long
    point: Tensor  # (N,) long
    count: int


def _segments(lo: Tensor, hi: Tensor, n: int) -> _Segments:
    nonempty = hi > lo
    starts = torch.unique(lo[nonempty])
    if starts.numel() == 0:
        none_q = torch.full_like(lo, -1)
        return _Segments(none_q, torch.full((n,), -1, dtype=torch.long, device=lo.device), 0)
    query = torch.where(nonempty, torch.searchsorted(starts, lo), -1)
    ends = torch.zeros_like(starts).scatter_(0, query[nonempty], hi[nonempty])
    j = torch.arange(n, device=lo.device)
    seg = torch.searchsorted(starts, j, right=True) - 1
    inside = (seg >= 0) & (j < ends[seg.clamp(min=0)])
    return _Segments(query, torch.where(inside, seg, -1), starts.numel())


@dataclass(frozen=True)
class _Cells:
    """Points hashed by (segment, cell), sorted, and each query's cell key."""

    h: float
    sorted_keys: Tensor  # (n_valid,) ascending
    order: Tensor  # (n_valid,) point index of each sorted key
    query_keys: Tensor  # (M,) key of each query's own cell (meaningless where query seg < 0)
    # (3^(D-1),) key offsets to the neighbour cells with the same last-axis index; the cells
    # at last-axis offsets -1, 0, +1 have consecutive keys, so each offset starts one run of
    # three cells, [key + offset - 1, key + offset + 2).
    offsets: Tensor


def _build(q: Tensor, x: Tensor, segs: _Segments, h: float) -> _Cells:
    """Hash points into cells of side >= h (coarsened if the keys would overflow)."""
    valid_q = segs.query >= 0
    valid_x = segs.point >= 0
    pts = x[valid_x].double()
    both = torch.cat([pts, q[valid_q].double()])
    origin = both.amin(dim=0)
    extent = (both.amax(dim=0) - origin).tolist()
    while True:
        n_cells = [int(e // h) + 1 for e in extent]
        widths = [c + 2 for c in n_cells]  # one empty layer each side: neighbours never wrap
        if segs.count * math.prod(widths) < _KEY_LIMIT:
            break
        h *= 2.0
    strides = [math.prod(widths[a + 1 :]) for a in range(len(widths))]
    seg_stride = math.prod(widths)

    def keys(p: Tensor, seg: Tensor) -> Tensor:
        cell = torch.floor((p.double() - origin) / h).long() + 1
        cell = torch.minimum(cell.clamp(min=1), torch.tensor(n_cells, device=p.device))
        return seg * seg_stride + (cell * torch.tensor(strides, device=p.device)).sum(dim=1)

    point_keys = keys(pts, segs.point[valid_x])
    sorted_keys, perm = torch.sort(point_keys, stable=True)
    order = valid_x.nonzero()[:, 0][perm]
    query_keys = keys(q, segs.query.clamp(min=0))
    offsets = torch.tensor(
        [
            sum(o * s for o, s in zip(off, strides[:-1], strict=True))
            for off in itertools.product((-1, 0, 1), repeat=len(strides) - 1)
        ],
        dtype=torch.long,
        device=q.device,
    )
    return _Cells(h, sorted_keys, order, query_keys, offsets)


def _ranges(cells: _Cells, rows: Tensor, segs: _Segments) -> tuple[Tensor, Tensor]:
    """Sorted-array ranges [start, start + count) covering each row's 3^D neighbour cells."""
    nk = cells.query_keys[rows, None] + cells.offsets[None, :]
    start = torch.searchsorted(cells.sorted_keys, nk - 1)
    count = torch.searchsorted(cells.sorted_keys, nk + 2) - start
    count = count.masked_fill((segs.query[rows] < 0)[:, None], 0)
    return start, count


def _counts(cells: _Cells, rows: Tensor, segs: _Segments, memory_budget: int) -> Tensor:
    """Number of candidates of each row."""
    step = max(memory_budget // _COUNT_BYTES, 1)
    parts = [
        _ranges(cells, rows[i : i + step], segs)[1].sum(dim=1) for i in range(0, len(rows), step)
    ]
    return torch.cat(parts) if parts else rows.new_zeros(0)


def _row_blocks(counts: Tensor, max_pairs: int) -> list[tuple[int, int]]:
    """Split rows into consecutive blocks of at most max_pairs candidates (>= one row each)."""
    ends = torch.cumsum(counts, 0).tolist()
    blocks, a, base = [], 0, 0
    m = len(ends)
    while a < m:
        # the last row b - 1 with ends[b - 1] - base <= max_pairs, at least a + 1
        lo_b, hi_b = a + 1, m
        while lo_b < hi_b:
            mid = (lo_b + hi_b + 1) // 2
            if ends[mid - 1] - base <= max_pairs:
                lo_b = mid
            else:
                hi_b = mid - 1
        blocks.append((a, lo_b))
        base = ends[lo_b - 1]
        a = lo_b
    return blocks


def _pairs(cells: _Cells, rows: Tensor, segs: _Segments) -> tuple[Tensor, Tensor]:
    """All (row position, point) candidate pairs of `rows`, grouped by row position."""
    start, count = _ranges(cells, rows, segs)
    flat = count.reshape(-1)
    total = int(flat.sum())
    which = torch.repeat_interleave(
        torch.arange(flat.numel(), device=rows.device), flat, output_size=total
    )
    first = torch.cumsum(flat, 0) - flat
    pos = torch.arange(total, device=rows.device) - first[which] + start.reshape(-1)[which]
    return which // cells.offsets.numel(), cells.order[pos]


def _segment_sizes(lo: Tensor, hi: Tensor, exclude: Tensor | None) -> Tensor:
    size = hi - lo
    if exclude is not None:
        size = size - ((exclude >= lo) & (exclude < hi)).long()
    return size


def _too_dense(counts: Tensor, sizes: Tensor) -> bool:
    return float(counts.sum()) > _DENSE_FRACTION * float((sizes.clamp(min=0) + 1).sum())


def _select_k(d: Tensor, j: Tensor, k: int, n: int) -> tuple[Tensor, Tensor]:
    """Per row, the k smallest (distance, index) pairs of a padded candidate matrix.

    Args:
        d: (R, C) candidate distances, +inf in padding.
        j: (R, C) long candidate point indices, n in padding.
        k: neighbours per row.
        n: the padding index (number of points).

    Returns:
        dist: (R, k) ascending by (distance, index), +inf where a row has fewer candidates.
        idx: (R, k) long, n where a row has fewer candidates.
    """
    rows, cols = d.shape
    kk = min(k, cols)
    kth = d.topk(kk, dim=1, largest=False, sorted=False).values.amax(dim=1, keepdim=True)
    chosen = d < kth
    tied = (d == kth) & (j < n)
    need = kk - _reference.count_per_row(chosen)
    over = _reference.count_per_row(tied) > need
    if bool(over.any()):  # ties at the k-th distance: keep the lowest indices
        tied_j = torch.where(tied[over], j[over], n)
        cut = tied_j.sort(dim=1).values.gather(1, (need[over] - 1).clamp(min=0)[:, None])
        tied[over] &= tied_j <= cut
    chosen |= tied
    r, c = chosen.nonzero(as_tuple=True)
    rank = _reference.row_ranks(r, rows)
    dist = d.new_full((rows, k), float("inf"))
    idx = torch.full((rows, k), n, dtype=torch.long, device=d.device)
    dist[r, rank] = d[r, c]
    idx[r, rank] = j[r, c]
    idx, order = idx.sort(dim=1, stable=True)
    dist, order2 = dist.gather(1, order).sort(dim=1, stable=True)
    return dist, idx.gather(1, order2)


def _initial_knn_cell(x: Tensor, segs: _Segments, k: int) -> float:
    """Cell side holding about k / 2 points at the average density.

    A ball of radius h then holds about 2k (3-d) or 1.6k (2-d) points on average, so most
    queries find their k neighbours within h and pass the test in the first round.
    """
    pts = x[segs.point >= 0].double()
    extent = [e for e in (pts.amax(dim=0) - pts.amin(dim=0)).tolist() if e > 0]
    if not extent:
        return 1.0  # all points coincide: any cell holds them all
    volume = math.prod(extent)
    return (_CELL_FILL * k * volume / pts.shape[0]) ** (1.0 / len(extent))


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
    """Grid version of `diffcore.ops._reference.knn_search` (same arguments and results)."""
    m, n = q.shape[0], x.shape[0]
    dist = q.new_full((m, k), float("inf"))
    idx = torch.full((m, k), -1, dtype=torch.long, device=q.device)
    segs = _segments(lo, hi, n)
    todo = (segs.query >= 0).nonzero()[:, 0]
    if todo.numel() == 0:
        return dist, idx
    sizes = _segment_sizes(lo, hi, exclude)
    h = _initial_knn_cell(x, segs, k)
    max_pairs = max(memory_budget // _PAIR_BYTES, 1)
    for _ in range(_MAX_ROUNDS):
        if todo.numel() == 0:
            break
        cells = _build(q, x, segs, h)
        counts = _counts(cells, todo, segs, memory_budget)
        if _too_dense(counts, sizes[todo]):
            break
        bound = (cells.h / (1.0 + _CELL_PAD)) ** norm
        unresolved = []
        for a, b in _row_blocks(counts, max_pairs):
            rows = todo[a:b]
            qi, j = _pairs(cells, rows, segs)
            found = torch.bincount(qi, minlength=b - a)
            width = max(int(found.max()), 1)
            dense_j = torch.full((b - a, width), n, dtype=torch.long, device=q.device)
            dense_j[qi, _reference.row_ranks(qi, b - a)] = j
            del qi, j
            pad = dense_j == n
            if exclude is not None:
                own = dense_j == exclude[rows, None]
                found = found - _reference.count_per_row(own)
                pad |= own
            near = x[dense_j.clamp(max=n - 1)]  # (rows, width, D)
            dense_d = pairwise_distance(q[rows, None, :], near, norm)
            del near
            dense_d.masked_fill_(pad, float("inf"))
            dense_j.masked_fill_(pad, n)
            best_d, best_j = _select_k(dense_d, dense_j, k, n)
            last = best_d[:, k - 1]
            done = (found == sizes[rows]) | ((found >= k) & (last < bound))
            ok = done[:, None] & (best_j < n)
            dist[rows[done]] = best_d[done]
            idx[rows] = torch.where(ok, best_j, idx[rows])
            unresolved.append(rows[~done])
        todo = torch.cat(unresolved)
        h = 2.0 * cells.h
    if todo.numel() > 0:
        dense_d, dense_i = _reference.knn_search(
            q[todo],
            x,
            lo[todo],
            hi[todo],
            k,
            exclude=None if exclude is None else exclude[todo],
            norm=norm,
            memory_budget=memory_budget,
        )
        dist[todo], idx[todo] = dense_d, dense_i
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
    """Grid version of `diffcore.ops._reference.radius_search` (same arguments and results)."""
    m, n = q.shape[0], x.shape[0]
    segs = _segments(lo, hi, n)
    rows_all = (segs.query >= 0).nonzero()[:, 0]
    empty = torch.empty(0, dtype=torch.long, device=q.device)
    if rows_all.numel() == 0:
        return empty, empty.clone()
    r = math.sqrt(float(r2))
    cells = _build(q, x, segs, r * (1.0 + _CELL_PAD))
    counts = _counts(cells, rows_all, segs, memory_budget)
    if _too_dense(counts, _segment_sizes(lo, hi, exclude)[rows_all]):
        return _reference.radius_search(
            q, x, lo, hi, r2, max_num_neighbors, exclude=exclude, memory_budget=memory_budget
        )
    out_rows, out_cols = [empty], [empty]
    for a, b in _row_blocks(counts, max(memory_budget // _PAIR_BYTES, 1)):
        rows = rows_all[a:b]
        qi, j = _pairs(cells, rows, segs)
        keep = pairwise_distance(q[rows[qi]], x[j], 2) < r2
        if exclude is not None:
            keep &= j != exclude[rows[qi]]
        key = torch.sort(rows[qi[keep]] * n + j[keep]).values
        row, col = key // n, key % n
        if max_num_neighbors is not None:
            fits = _reference.row_ranks(row - int(rows[0]), m) < max_num_neighbors
            row, col = row[fits], col[fits]
        out_rows.append(row)
        out_cols.append(col)
    return torch.cat(out_rows), torch.cat(out_cols)

"""Exact per-node counts of the 15 orbits of 2-4 node graphlets (the ORCA numbering).

Orbits follow Hocevar & Demsar 2014 ("A combinatorial approach to graphlet counting",
Bioinformatics 30(4), fig. 1), the table ``orca node 4`` prints and GraphRNN / GDSS average per
graph for their orbit MMD. Graphlets are *induced* connected subgraphs:

====== ================= ====================================
orbit  graphlet          node
====== ================= ====================================
0      edge              either end (so orbit 0 is the degree)
1, 2   path on 3 nodes   end, middle
3      triangle          any
4, 5   path on 4 nodes   end, inner
6, 7   star (claw)       leaf, centre
8      4-cycle           any
9-11   paw               pendant, degree-2 triangle node, degree-3 node
12, 13 diamond           degree 2, degree 3
14     K4                any
====== ================= ====================================

:func:`orbit_counts` counts with matrix algebra, no enumeration: it counts *non-induced*
occurrences of each 4-node pattern per node in closed form, then converts them into induced
counts with the (unitriangular, integer) matrix that says how often each pattern occurs inside
each graphlet; that matrix is derived by enumeration in :func:`_pattern_in_graphlet`.
:func:`orbit_counts_enumerate` is its reference twin: it lists every connected induced subgraph
on 2-4 nodes.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable

import torch
from torch import Tensor

NUM_ORBITS = 15

# (number of edges, degree inside the graphlet) -> orbit; connected graphs on 3 and 4 nodes are
# told apart by their edge count plus the node's degree, except the 3-edge 4-node graphs (path
# and star), which the maximum degree separates (see `_orbit_of`).
_ORBIT_3 = {(2, 1): 1, (2, 2): 2, (3, 2): 3}
_ORBIT_4 = {
    (4, 2, "cycle"): 8,
    (4, 1, "paw"): 9,
    (4, 2, "paw"): 10,
    (4, 3, "paw"): 11,
    (5, 2, ""): 12,
    (5, 3, ""): 13,
    (6, 3, ""): 14,
}


def _orbit_of(node: int, nodes: tuple[int, ...], edges: set[frozenset[int]]) -> int:
    """Orbit of `node` in the connected graph (`nodes`, `edges`) on 2-4 nodes."""
    deg = {v: sum(1 for e in edges if v in e) for v in nodes}
    d = deg[node]
    if len(nodes) == 2:
        return 0
    if len(nodes) == 3:
        return _ORBIT_3[(len(edges), d)]
    m = len(edges)
    if m == 3:  # path (max degree 2) or star (max degree 3)
        if max(deg.values()) == 2:
            return 4 if d == 1 else 5
        return 6 if d == 1 else 7
    if m == 4:
        kind = "cycle" if all(x == 2 for x in deg.values()) else "paw"
        return _ORBIT_4[(4, d, kind)]
    return _ORBIT_4[(m, d, "")]


def _connected(nodes: tuple[int, ...], edges: set[frozenset[int]]) -> bool:
    seen, stack = {nodes[0]}, [nodes[0]]
    while stack:
        u = stack.pop()
        for v in nodes:
            if v not in seen and frozenset((u, v)) in edges:
                seen.add(v)
                stack.append(v)
    return len(seen) == len(nodes)


# One representative graphlet per 4-node orbit: (edges on nodes 0..3, a node in that orbit).
_GRAPHLETS_4 = {
    4: ([(0, 1), (1, 2), (2, 3)], 0),
    5: ([(0, 1), (1, 2), (2, 3)], 1),
    6: ([(0, 1), (0, 2), (0, 3)], 1),
    7: ([(0, 1), (0, 2), (0, 3)], 0),
    8: ([(0, 1), (1, 2), (2, 3), (3, 0)], 0),
    9: ([(0, 1), (1, 2), (2, 0), (2, 3)], 3),
    10: ([(0, 1), (1, 2), (2, 0), (2, 3)], 0),
    11: ([(0, 1), (1, 2), (2, 0), (2, 3)], 2),
    12: ([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)], 1),
    13: ([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)], 0),
    14: ([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)], 0),
}


@functools.cache
def _pattern_in_graphlet() -> Tensor:
    """(11, 11) integer matrix C relating non-induced to induced 4-node orbit counts.

    C[k-4, m-4] is the number of spanning subgraphs of graphlet m that are the pattern of
    orbit k with the chosen orbit-m node in orbit k.

    Non-induced counts N (per node, orbits 4..14) relate to induced counts O by N = C O.
    """
    c = torch.zeros(11, 11, dtype=torch.int64)
    nodes = (0, 1, 2, 3)
    for m, (edge_list, node) in _GRAPHLETS_4.items():
        edges = [frozenset(e) for e in edge_list]
        for r in range(3, len(edges) + 1):
            for sub in itertools.combinations(edges, r):
                sub_set = set(sub)
                if _connected(nodes, sub_set):
                    c[_orbit_of(node, nodes, sub_set) - 4, m - 4] += 1
    return c


@functools.cache
def _induced_from_noninduced() -> Tensor:
    """(11, 11) integer inverse of :func:`_pattern_in_graphlet` (unitriangular, so integral)."""
    c = _pattern_in_graphlet().double()
    inv = torch.linalg.inv(c).round()
    if not torch.equal(inv @ c, torch.eye(11, dtype=torch.float64)):
        raise AssertionError("graphlet pattern matrix is not unimodular")  # pragma: no cover
    return inv.to(torch.int64)


def _check_adjacency(adj: Tensor) -> None:
    if adj.ndim not in (2, 3) or adj.shape[-1] != adj.shape[-2]:
        raise ValueError(f"`adj` must have shape (N, N) or (B, N, N), got {tuple(adj.shape)}")
    if adj.is_floating_point() and not bool(torch.isfinite(adj).all()):
        raise ValueError("`adj` contains NaN or inf")
    if not bool(((adj == 0) | (adj == 1)).all()):
        raise ValueError(
            "`adj` must hold 0/1 entries (an unweighted simple graph); threshold or quantise "
            "generated adjacencies first (e.g. difflab.science.graphs.from_dense)"
        )
    if not torch.equal(adj, adj.transpose(-1, -2)):
        raise ValueError("`adj` must be symmetric (an undirected graph)")
    if bool(adj.diagonal(dim1=-2, dim2=-1).any()):
        raise ValueError("`adj` has self-loops (non-zero diagonal); orbits need a simple graph")


def _k4_per_node(a: Tensor) -> Tensor:
    """(B, N) number of 4-cliques through each node, from a (B, N, N) bool adjacency.

    Lists each triangle i < j < k once, counts the nodes adjacent to all three, and gives that
    count to each corner; a K4 is seen from 3 of its triangles at each of its nodes.
    """
    bsz, n, _ = a.shape
    b, i, j = torch.nonzero(torch.triu(a, diagonal=1), as_tuple=True)
    later = torch.arange(n, device=a.device) > j[:, None]
    t_edge, k = torch.nonzero(a[b, i] & a[b, j] & later, as_tuple=True)
    b, i, j = b[t_edge], i[t_edge], j[t_edge]
    fourth = (a[b, i] & a[b, j] & a[b, k]).sum(-1)
    out = torch.zeros(bsz * n, dtype=torch.int64, device=a.device)
    for corner in (i, j, k):
        out.index_add_(0, b * n + corner, fourth)
    return (out // 3).view(bsz, n)


def orbit_counts(adj: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per-node counts of the 15 graphlet orbits (ORCA numbering, see the module docstring).

    Exact integer counts by closed-form matrix expressions (float64 matrix products, exact
    below 2^53) plus a listing of triangles for K4; no enumeration of 4-node subsets.

    Args:
        adj: (N, N) or (B, N, N) 0/1 symmetric adjacency without self-loops (bool, int or float).
        mask: optional (N,) or (B, N) bool, True for real nodes; edges touching masked-out
            (padding) nodes must be absent. Masked-out rows of the result are 0.

    Returns:
        counts: (N, 15) or (B, N, 15) int64; column 0 is the degree.

    >>> orbit_counts(torch.tensor([[0, 1, 0], [1, 0, 1], [0, 1, 0]]))[:, :4].tolist()
    [[1, 1, 0, 0], [2, 0, 1, 0], [1, 1, 0, 0]]
    """
    _check_adjacency(adj)
    single = adj.ndim == 2
    a_bool = (adj != 0).unsqueeze(0) if single else adj != 0
    if mask is not None:
        m = mask.unsqueeze(0) if single else mask
        if m.shape != a_bool.shape[:2]:
            raise ValueError(
                f"`mask` must have shape {tuple(a_bool.shape[:2])} to match `adj`, "
                f"got {tuple(mask.shape)}"
            )
        outside = ~(m[:, :, None] & m[:, None, :])
        if bool((a_bool & outside).any()):
            raise ValueError("`adj` has edges touching masked-out (padding) nodes")
    a = a_bool.double()
    d = a.sum(-1)  # (B, N)
    a2 = a @ a
    t = (a2 * a).sum(-1) / 2  # triangles at each node
    tri_edge = a2 * a  # triangles on each edge
    a_dm1 = (a @ (d - 1).unsqueeze(-1)).squeeze(-1)  # sum over neighbours of (d_j - 1)
    a2_dm1 = (a2 @ (d - 1).unsqueeze(-1)).squeeze(-1)  # walks i-j-k weighted by (d_k - 1)

    def choose2(x: Tensor) -> Tensor:
        return x * (x - 1) / 2

    o = torch.zeros(*a.shape[:2], NUM_ORBITS, dtype=torch.float64, device=a.device)
    o[..., 0] = d
    o[..., 1] = a_dm1 - 2 * t
    o[..., 2] = choose2(d) - t
    o[..., 3] = t
    # Non-induced counts of each 4-node pattern with the node in orbit k (k = 4..14).
    off_diag = 1 - torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    noninduced = torch.stack(
        [
            a2_dm1 - 2 * t - d * (d - 1),  # 4: paths i-j-k-l
            (d - 1) * a_dm1 - 2 * t,  # 5: paths j-i-k-l
            (a * choose2(d - 1).unsqueeze(-2)).sum(-1),  # 6: leaf of a star
            d * (d - 1) * (d - 2) / 6,  # 7: centre of a star
            (choose2(a2) * off_diag).sum(-1),  # 8: 4-cycles through i
            (a * (t.unsqueeze(-2) - tri_edge)).sum(-1),  # 9: pendant of a paw
            (tri_edge * (d - 2).unsqueeze(-2)).sum(-1),  # 10: triangle node next to the hub
            t * (d - 2),  # 11: hub of a paw
            ((a @ (a * (a2 - 1))) * a).sum(-1) / 2,  # 12: diamond, degree 2
            (a * choose2(a2)).sum(-1),  # 13: diamond, degree 3
            _k4_per_node(a_bool).double(),  # 14: K4
        ],
        dim=-1,
    )
    o[..., 4:] = noninduced.round() @ _induced_from_noninduced().double().T
    counts = o.round().to(torch.int64)
    return counts[0] if single else counts


def _edge_set(adj: Tensor) -> tuple[int, set[frozenset[int]]]:
    n = adj.shape[0]
    rows, cols = torch.nonzero(torch.triu(adj != 0, diagonal=1), as_tuple=True)
    return n, {frozenset((int(u), int(v))) for u, v in zip(rows, cols, strict=True)}


def _connected_subsets(n: int, nbrs: list[set[int]], size: int) -> Iterable[tuple[int, ...]]:
    """Every connected node set of `size` nodes, once (ESU, Wernicke 2006)."""

    def extend(sub: tuple[int, ...], ext: set[int], root: int) -> Iterable[tuple[int, ...]]:
        if len(sub) == size:
            yield sub
            return
        ext = set(ext)
        near = set().union(*(nbrs[u] for u in sub)) | set(sub)
        while ext:
            w = ext.pop()
            new = {u for u in nbrs[w] if u > root and u not in near}
            yield from extend((*sub, w), ext | new, root)

    for v in range(n):
        yield from extend((v,), {u for u in nbrs[v] if u > v}, v)


def orbit_counts_enumerate(adj: Tensor) -> Tensor:
    """Reference twin of :func:`orbit_counts`: lists every connected induced 2-4 node subgraph.

    Args:
        adj: (N, N) 0/1 symmetric adjacency without self-loops.

    Returns:
        counts: (N, 15) int64.
    """
    _check_adjacency(adj)
    if adj.ndim != 2:
        raise ValueError(f"`adj` must have shape (N, N), got {tuple(adj.shape)}")
    n, edges = _edge_set(adj)
    nbrs: list[set[int]] = [set() for _ in range(n)]
    for e in edges:
        u, v = tuple(e)
        nbrs[u].add(v)
        nbrs[v].add(u)
    counts = torch.zeros(n, NUM_ORBITS, dtype=torch.int64)
    for size in (2, 3, 4):
        for sub in _connected_subsets(n, nbrs, size):
            sub_edges = {e for e in itertools.combinations(sub, 2) if frozenset(e) in edges}
            es = {frozenset(e) for e in sub_edges}
            for v in sub:
                counts[v, _orbit_of(v, sub, es)] += 1
    return counts

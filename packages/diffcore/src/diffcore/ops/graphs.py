"""k-nearest-neighbour and radius graphs on point sets, with torch-cluster semantics.

`knn_graph` and `radius_graph` follow `torch_cluster` (pyg-team/pytorch_cluster:
torch_cluster/knn.py, torch_cluster/radius.py), which PyG calls for the same names but which
has no PyPI wheels. Edges are a long `(2, E)` tensor; with ``flow="source_to_target"`` row 0
holds sources j and row 1 targets i, so each target receives messages from its neighbours (edge
(j, i)). Nodes of different graphs (a sorted PyG `batch` vector) are never joined.

Distances are squared Euclidean distances computed in the dtype of `x`, coordinate by coordinate.
Where torch-cluster leaves a choice to the implementation, these functions pin it down, so both
backends and every run give the same edges:

- ties in distance go to the lower node index;
- `radius_graph` keeps pairs with squared distance < r^2 (r^2 rounded to the dtype of `x`),
  and when a node has more than `max_num_neighbors` neighbours it keeps the lowest-indexed ones
  (torch-cluster's CUDA rule; its CPU build keeps an arbitrary subset);
- `knn_graph(loop=False)` leaves the node itself out before choosing its k neighbours, so every
  node gets min(k, n_graph - 1) neighbours even among duplicate points (torch-cluster searches
  k + 1 and then drops self-loops, which can leave k + 1 neighbours when self is not among them).

Edges come sorted by target, then by distance (`knn_graph`) or by source index (`radius_graph`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _dispatch
from ._dispatch import Backend
from ._validate import check_batch, check_coordinates, check_int, check_radius

__all__ = ["knn_graph", "radius_graph"]

_FLOWS = ("source_to_target", "target_to_source")


def _check_options(loop: object, flow: object) -> None:
    if not isinstance(loop, bool):
        raise ValueError(f"`loop` must be a bool, got {loop!r}.")
    if flow not in _FLOWS:
        raise ValueError(f"`flow` must be one of {', '.join(_FLOWS)}; got {flow!r}.")


def _graph_ranges(batch: Tensor | None, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """For each node, the half-open node range [lo, hi) of its graph."""
    if batch is None:
        return (
            torch.zeros(n, dtype=torch.long, device=device),
            torch.full((n,), n, dtype=torch.long, device=device),
        )
    lo = torch.searchsorted(batch, batch, right=False)
    hi = torch.searchsorted(batch, batch, right=True)
    return lo, hi


def _edges(source: Tensor, target: Tensor, flow: str) -> Tensor:
    pair = (source, target) if flow == "source_to_target" else (target, source)
    return torch.stack(pair, dim=0)


def knn_graph(
    x: Tensor,
    k: int,
    batch: Tensor | None = None,
    loop: bool = False,
    flow: str = "source_to_target",
    *,
    backend: Backend = "auto",
    memory_budget: int | None = None,
) -> Tensor:
    """Join every node to its k nearest nodes of the same graph (torch-cluster `knn_graph`).

    Args:
        x: (N, D) float32/float64 coordinates, finite.
        k: neighbours per node, >= 1. A graph with fewer nodes gives each node all of them.
        batch: (N,) sorted integer graph id of each node, or None for a single graph.
        loop: include each node among its own neighbours (at distance 0).
        flow: "source_to_target" (row 0 = neighbour j, row 1 = node i) or "target_to_source".
        backend: "auto" (Triton on CUDA, torch otherwise), "torch" or "triton".
        memory_budget: bytes one block of the torch backend may use; None for the default.

    Returns:
        edge_index: (2, E) long on the device of `x`, E = sum over nodes of their neighbour
            count, sorted by node i and then by (distance, j).

    >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    >>> knn_graph(x, k=1)
    tensor([[1, 0, 1],
            [0, 1, 2]])
    """
    x = check_coordinates(x, "x", 2)
    k = check_int(k, "k", minimum=1)
    _check_options(loop, flow)
    n = x.shape[0]
    batch = check_batch(batch, n, x.device)
    budget = _dispatch.check_memory_budget(memory_budget)
    chosen = _dispatch.choose_backend(backend, x.device, k=k)
    if n == 0:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    lo, hi = _graph_ranges(batch, n, x.device)
    exclude = None if loop else torch.arange(n, device=x.device)
    points = x.detach()
    _, idx = _dispatch.knn_search(
        points, points, lo, hi, k, exclude=exclude, norm=2, backend=chosen, memory_budget=budget
    )
    found = idx >= 0
    target = torch.arange(n, device=x.device)[:, None].expand(n, k)
    return _edges(idx[found], target[found], flow)


def radius_graph(
    x: Tensor,
    r: float,
    batch: Tensor | None = None,
    loop: bool = False,
    max_num_neighbors: int | None = 32,
    flow: str = "source_to_target",
    *,
    backend: Backend = "auto",
    memory_budget: int | None = None,
) -> Tensor:
    """Join every node to the nodes of its graph closer than `r` (torch-cluster `radius_graph`).

    Args:
        x: (N, D) float32/float64 coordinates, finite.
        r: radius, > 0; j is a neighbour of i when |x_i - x_j|^2 < r^2 (strict, as
            torch-cluster).
        batch: (N,) sorted integer graph id of each node, or None for a single graph.
        loop: include self-loops (i, i).
        max_num_neighbors: at most this many neighbours per node (>= 1), the ones with the
            lowest indices; None for no cap. Self-loops do not count when `loop` is False.
        flow: "source_to_target" (row 0 = neighbour j, row 1 = node i) or "target_to_source".
        backend: "auto" (Triton on CUDA, torch otherwise), "torch" or "triton".
        memory_budget: bytes one block of the torch backend may use; None for the default.

    Returns:
        edge_index: (2, E) long on the device of `x`, sorted by node i and then by j.

    >>> x = torch.tensor([[0.0], [0.5], [2.0]])
    >>> radius_graph(x, r=1.0)
    tensor([[1, 0],
            [0, 1]])
    """
    x = check_coordinates(x, "x", 2)
    r = check_radius(r)
    cap = (
        None
        if max_num_neighbors is None
        else check_int(max_num_neighbors, "max_num_neighbors", minimum=1)
    )
    _check_options(loop, flow)
    n = x.shape[0]
    batch = check_batch(batch, n, x.device)
    budget = _dispatch.check_memory_budget(memory_budget)
    chosen = _dispatch.choose_backend(backend, x.device)
    if n == 0:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    lo, hi = _graph_ranges(batch, n, x.device)
    exclude = None if loop else torch.arange(n, device=x.device)
    r2 = torch.tensor(r * r, dtype=x.dtype, device=x.device)
    points = x.detach()
    target, source = _dispatch.radius_search(
        points, points, lo, hi, r2, cap, exclude=exclude, backend=chosen, memory_budget=budget
    )
    return _edges(source, target, flow)

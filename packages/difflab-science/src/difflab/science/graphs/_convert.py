"""Conversions between networkx graphs, adjacency matrices, PyG ``Data`` and dense batches.

Dense batches are what GDSS trains on (harryjo97/GDSS: utils/graph_utils.py, graphs_to_tensor
and init_features): node features X (B, N, F), adjacency A (B, N, N) padded to ``max_nodes``,
and a node mask (B, N). Node order is the order of ``graph.nodes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from torch_geometric.data import Data

GraphLike: TypeAlias = nx.Graph | Tensor | np.ndarray
FEATURE_KINDS = ("degree", "ones", "zeros")


@dataclass(frozen=True, eq=False)  # holds tensors: compare fields explicitly
class DenseGraphs:
    """A padded batch of graphs.

    Attributes:
        x: (B, N, F) node features, zero on padding nodes.
        adj: (B, N, N) adjacency (0/1 for plain graphs, bond orders for molecules), zero on
            rows and columns of padding nodes.
        mask: (B, N) bool, True for real nodes.
    """

    x: Tensor
    adj: Tensor
    mask: Tensor

    def __len__(self) -> int:
        return self.adj.shape[0]


def to_adjacency(graph: GraphLike, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """(n, n) adjacency of one graph, rows in the order of ``graph.nodes``.

    Args:
        graph: a networkx graph (edge weights are ignored: every edge counts 1), or an (n, n)
            tensor / array, returned as a tensor of `dtype`.
        dtype: dtype of the result.

    Returns:
        adj: (n, n).
    """
    if isinstance(graph, nx.Graph):
        if graph.is_directed() or graph.is_multigraph():
            raise ValueError(
                f"expected an undirected simple graph, got {type(graph).__name__}; "
                "convert it with nx.Graph(graph)"
            )
        arr = nx.to_numpy_array(graph, nodelist=list(graph.nodes), weight=None)
        return torch.as_tensor(arr, dtype=dtype)
    if isinstance(graph, np.ndarray):
        graph = torch.from_numpy(graph)
    if isinstance(graph, Tensor):
        if graph.ndim != 2 or graph.shape[0] != graph.shape[1]:
            raise ValueError(f"an adjacency must have shape (n, n), got {tuple(graph.shape)}")
        return graph.to(dtype)
    raise TypeError(f"expected a networkx graph or an (n, n) tensor, got {type(graph).__name__}")


def degree_features(adj: Tensor, mask: Tensor, max_feat_num: int) -> Tensor:
    """One-hot node degrees, GDSS's ``init: deg`` node features (utils/graph_utils.py).

    Args:
        adj: (B, N, N) 0/1 adjacency.
        mask: (B, N) bool, True for real nodes.
        max_feat_num: number of classes F; degrees must be below it.

    Returns:
        x: (B, N, F) float32, zero rows for padding nodes.
    """
    deg = adj.sum(-1).round().to(torch.int64)
    if deg.numel() and int(deg.max()) >= max_feat_num:
        raise ValueError(
            f"a node has degree {int(deg.max())} but `max_feat_num` is {max_feat_num}; "
            f"degree one-hots need max_feat_num > max degree"
        )
    return F.one_hot(deg, max_feat_num).to(torch.float32) * mask[..., None]


def to_dense(
    graphs: Sequence[GraphLike],
    max_nodes: int,
    *,
    features: str = "degree",
    max_feat_num: int = 1,
) -> DenseGraphs:
    """Pad graphs into one dense batch with GDSS's initial node features.

    Args:
        graphs: B graphs (networkx or (n, n) adjacencies) with at most `max_nodes` nodes.
        max_nodes: N, the padded size (GDSS ``data.max_node_num``).
        features: ``"degree"`` (one-hot degree, GDSS ``init: deg``, used for every GDSS graph
            dataset), ``"ones"`` or ``"zeros"``.
        max_feat_num: F, the feature width (GDSS ``data.max_feat_num``).

    Returns:
        DenseGraphs with x (B, N, F), adj (B, N, N) float32 and mask (B, N).
    """
    if features not in FEATURE_KINDS:
        raise ValueError(f"unknown features {features!r}; expected one of {FEATURE_KINDS}")
    adj = torch.zeros(len(graphs), max_nodes, max_nodes)
    mask = torch.zeros(len(graphs), max_nodes, dtype=torch.bool)
    for b, g in enumerate(graphs):
        a = to_adjacency(g)
        n = a.shape[0]
        if n > max_nodes:
            raise ValueError(f"graph {b} has {n} nodes, more than max_nodes={max_nodes}")
        adj[b, :n, :n] = a
        mask[b, :n] = True
    if features == "degree":
        x = degree_features(adj, mask, max_feat_num)
    else:
        fill = 1.0 if features == "ones" else 0.0
        x = torch.full((len(graphs), max_nodes, max_feat_num), fill) * mask[..., None]
    return DenseGraphs(x=x, adj=adj, mask=mask)


def from_dense(
    adj: Tensor,
    mask: Tensor | None = None,
    *,
    threshold: float = 0.5,
    remove_isolated: bool = False,
) -> list[nx.Graph]:
    """Turn a batch of (possibly generated, real-valued) adjacencies into networkx graphs.

    Entries >= `threshold` become edges (GDSS ``quantize``); self-loops are dropped. GDSS's
    evaluation (``adjs_to_graphs``) also drops isolated nodes and turns a graph left empty into
    a single node: pass ``remove_isolated=True`` for that.

    Args:
        adj: (B, N, N) or (N, N) symmetric adjacency.
        mask: optional (B, N) / (N,) bool; padding nodes (False) are left out.
        threshold: quantisation threshold.
        remove_isolated: drop nodes without edges, as GDSS does for generated graphs.

    Returns:
        B graphs with nodes 0..n-1.
    """
    if adj.ndim == 2:
        adj = adj.unsqueeze(0)
        mask = None if mask is None else mask.unsqueeze(0)
    if adj.ndim != 3 or adj.shape[-1] != adj.shape[-2]:
        raise ValueError(f"`adj` must have shape (B, N, N) or (N, N), got {tuple(adj.shape)}")
    if not bool(torch.isfinite(adj).all()):
        raise ValueError("`adj` contains NaN or inf")
    if mask is not None and mask.shape != adj.shape[:2]:
        raise ValueError(f"`mask` must have shape {tuple(adj.shape[:2])}, got {tuple(mask.shape)}")
    binary = (adj >= threshold).cpu()
    if not torch.equal(binary, binary.transpose(-1, -2)):
        raise ValueError("`adj` is not symmetric after thresholding; symmetrise it first")
    out = []
    for b in range(binary.shape[0]):
        a = binary[b]
        if mask is not None:
            keep = mask[b].cpu().bool()
            a = a[keep][:, keep]
        a = a & ~torch.eye(a.shape[0], dtype=torch.bool)
        g = nx.Graph()
        g.add_nodes_from(range(a.shape[0]))
        rows, cols = torch.nonzero(torch.triu(a, diagonal=1), as_tuple=True)
        g.add_edges_from(zip(rows.tolist(), cols.tolist(), strict=True))
        if remove_isolated:
            g.remove_nodes_from(list(nx.isolates(g)))
            g = nx.convert_node_labels_to_integers(g)
            if g.number_of_nodes() == 0:
                g.add_node(0)
        out.append(g)
    return out


def to_pyg(graph: nx.Graph, x: Tensor | None = None) -> Data:
    """PyG ``Data`` of an undirected graph: ``edge_index`` (2, 2E) with both directions.

    Args:
        graph: networkx graph; its nodes are numbered 0..n-1 in the order of ``graph.nodes``.
        x: optional (n, F) node features.

    Returns:
        Data with ``edge_index`` (2, 2E) long (row 0 sources), ``num_nodes`` and ``x``.
    """
    from torch_geometric.data import Data

    index = {v: i for i, v in enumerate(graph.nodes)}
    pairs = [(index[u], index[v]) for u, v in graph.edges if u != v]
    e = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)
    edge_index = torch.cat([e, e.flip(1)]).T.contiguous()
    n = graph.number_of_nodes()
    if x is not None and x.shape[0] != n:
        raise ValueError(f"`x` has {x.shape[0]} rows but the graph has {n} nodes")
    return Data(x=x, edge_index=edge_index, num_nodes=n)


def from_pyg(data: Any) -> nx.Graph:
    """Undirected networkx graph (nodes 0..n-1) of a PyG ``Data``; edge directions merge."""
    n = int(data.num_nodes)
    ei = data.edge_index
    if ei.ndim != 2 or ei.shape[0] != 2:
        raise ValueError(f"`edge_index` must have shape (2, E), got {tuple(ei.shape)}")
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
        raise ValueError(f"`edge_index` refers to nodes outside 0..{n - 1}")
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from((u, v) for u, v in ei.T.tolist() if u != v)
    return g

"""GDSS's score networks: ScoreNetworkX (GCN stack) and ScoreNetworkA (graph multi-head attention).

Jo, Lee & Hwang 2022, "Score-based Generative Modeling of Graphs via the System of Stochastic
Differential Equations" (arXiv:2202.02514), sec. 3.2 and appendix C.1. Both networks are
permutation equivariant: every layer is a dense GCN convolution, an attention map built from
them, or an MLP applied per node / per node pair.

As in GDSS, the networks take no time input: for a VP leaf the output is read as the noise
``eps`` (GDSS's ``score = -model(x, adj) / std``), for a VE leaf as the score itself, so the
noise level enters through that scaling (see :func:`prediction_kind`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "DenseGCN",
    "GDSSNet",
    "GraphAttention",
    "ScoreNetworkA",
    "ScoreNetworkX",
    "adjacency_powers",
    "gcn_norm",
]


def _mask_nodes(x: Tensor, mask: Tensor | None) -> Tensor:
    """Zero padded nodes of x (B, N, F) with mask (B, N)."""
    return x if mask is None else x * mask[..., None].to(x.dtype)


def _mask_pairs(a: Tensor, mask: Tensor | None) -> Tensor:
    """Zero rows/columns of padded nodes of a (B, N, N) or (B, C, N, N)."""
    if mask is None:
        return a
    m = mask.to(a.dtype)
    if a.ndim == 4:
        m = m[:, None]
    return a * m[..., :, None] * m[..., None, :]


def _fit_mask(mask: Tensor | None, batch: int) -> Tensor | None:
    """The (B, N) node mask for a batch of ``batch`` states (a multiple of B: SVDD candidates)."""
    if mask is None or mask.shape[0] == batch:
        return mask
    if batch % mask.shape[0] != 0:
        raise ValueError(
            f"`node_mask` has {mask.shape[0]} rows for a batch of {batch}; expected equal sizes "
            "or a multiple (candidates repeated per sample)"
        )
    return mask.repeat_interleave(batch // mask.shape[0], dim=0)


def adjacency_powers(adj: Tensor, c: int) -> Tensor:
    """Stack ``A, A^2, ..., A^c`` of adj (B, N, N) as channels: (B, c, N, N) (GDSS eq. 11)."""
    out = [adj]
    for _ in range(c - 1):
        out.append(out[-1] @ adj)
    return torch.stack(out, dim=1)


class _MLP(nn.Sequential):
    """``num_layers`` linear layers with ELU between them (none after the last)."""

    def __init__(self, num_layers: int, d_in: int, d_hidden: int, d_out: int) -> None:
        dims = [d_in] + [d_hidden] * (num_layers - 1) + [d_out]
        mods: list[nn.Module] = []
        for i in range(num_layers):
            mods.append(nn.Linear(dims[i], dims[i + 1]))
            if i < num_layers - 1:
                mods.append(nn.ELU())
        super().__init__(*mods)


def gcn_norm(adj: Tensor) -> Tensor:
    """``D^-1/2 A~ D^-1/2`` of adj (..., N, N), A~ = A with unit diagonal (Kipf & Welling 2017).

    Degrees are clamped below at 1 (noisy real-valued adjacencies may have small or negative
    row sums), as in PyG's ``DenseGCNConv`` which GDSS uses.
    """
    n = adj.shape[-1]
    eye = torch.eye(n, dtype=adj.dtype, device=adj.device)
    a = adj * (1 - eye) + eye
    d = a.sum(-1).clamp_min(1.0).rsqrt()
    return d[..., :, None] * a * d[..., None, :]


class DenseGCN(nn.Module):
    """Dense graph convolution ``gcn_norm(A) X W + b``.

    Shapes: x (B, N, C_in), adj_norm (B, N, N) (from :func:`gcn_norm`) -> (B, N, C_out).
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_in, c_out))
        self.bias = nn.Parameter(torch.zeros(c_out))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: Tensor, adj_norm: Tensor) -> Tensor:  # noqa: D102
        return adj_norm @ (x @ self.weight) + self.bias


class ScoreNetworkX(nn.Module):
    """GDSS's node-feature score network (models/ScoreNetwork_X.py of the paper's code).

    ``depth`` GCN layers with tanh, the input and every layer's output concatenated
    (F + depth * nhid channels), then a 3-layer ELU MLP back to F channels, masked.

    Shapes: x (B, N, F), adj (B, N, N), mask (B, N) -> (B, N, F).
    """

    symmetry = "perm"

    def __init__(self, max_feat_num: int, depth: int, nhid: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseGCN(max_feat_num if i == 0 else nhid, nhid) for i in range(depth)
        )
        fdim = max_feat_num + depth * nhid
        self.final = _MLP(3, fdim, 2 * fdim, max_feat_num)

    def forward(self, x: Tensor, adj: Tensor, mask: Tensor | None = None) -> Tensor:  # noqa: D102
        an = gcn_norm(adj)
        xs = [x]
        for layer in self.layers:
            x = torch.tanh(layer(x, an))
            xs.append(x)
        return _mask_nodes(self.final(torch.cat(xs, dim=-1)), mask)


class GraphAttention(nn.Module):
    """Graph multi-head attention (GDSS eq. 10) on C adjacency channels at once.

    For each channel c, GCN queries, keys and values ``Q, K, V = gcn_norm(A_c) X W + b``, and
    ``att_c = tanh(Q K^T / sqrt(c_out))`` per head, averaged over heads and symmetrised.
    The C channels have separate weights and are computed in one batched product.

    Shapes: x (B, N, C_in), adjc (B, C, N, N) -> values (B, C, N, C_out), attention
    (B, C, N, N).
    """

    def __init__(self, c_in: int, attn_dim: int, c_out: int, num_heads: int, channels: int = 1):
        super().__init__()
        if attn_dim % num_heads != 0:
            raise ValueError(
                f"`attn_dim` ({attn_dim}) must be divisible by `num_heads` ({num_heads})"
            )
        width = 2 * attn_dim + c_out
        self.weight = nn.Parameter(torch.empty(channels, c_in, width))
        self.bias = nn.Parameter(torch.zeros(channels, 1, width))
        for c in range(channels):  # Glorot per projection, as separate GCN layers would be
            for lo, hi in ((0, attn_dim), (attn_dim, 2 * attn_dim), (2 * attn_dim, width)):
                nn.init.xavier_uniform_(self.weight.data[c, :, lo:hi])
        self.attn_dim, self.num_heads = attn_dim, num_heads
        self.scale = 1 / math.sqrt(c_out)

    def forward(self, x: Tensor, adjc: Tensor) -> tuple[Tensor, Tensor]:  # noqa: D102
        b, c, n, _ = adjc.shape
        h = gcn_norm(adjc) @ torch.einsum("bnf,cfd->bcnd", x, self.weight) + self.bias
        q, k, v = h.split([self.attn_dim, self.attn_dim, h.shape[-1] - 2 * self.attn_dim], -1)
        q = q.reshape(b, c, n, self.num_heads, -1).transpose(2, 3)
        k = k.reshape(b, c, n, self.num_heads, -1).transpose(2, 3)
        att = torch.tanh(q @ k.transpose(-1, -2) * self.scale).mean(2)
        return v, 0.5 * (att + att.transpose(-1, -2))


class _AttentionLayer(nn.Module):
    """One ScoreNetworkA layer: an attention per adjacency channel, node and pair MLPs."""

    def __init__(
        self,
        num_linears: int,
        c_node_in: int,
        attn_dim: int,
        c_node_out: int,
        c_in: int,
        c_out: int,
        num_heads: int,
    ) -> None:
        super().__init__()
        self.attn = GraphAttention(c_node_in, attn_dim, c_node_out, num_heads, channels=c_in)
        hidden = 2 * max(c_in, c_out)
        self.pair_mlp = _MLP(num_linears, 2 * c_in, hidden, c_out)
        self.node_mlp = _MLP(2, c_in * c_node_out, hidden, c_node_out)

    def forward(self, x: Tensor, adjc: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """X (B, N, C_node_in), adjc (B, C_in, N, N) -> (B, N, C_node_out), (B, C_out, N, N)."""
        v, att = self.attn(x, adjc)
        b, c, n, _ = v.shape
        vals = v.permute(0, 2, 1, 3).reshape(b, n, -1)  # channel-major concatenation
        x_out = torch.tanh(_mask_nodes(self.node_mlp(vals), mask))
        pairs = torch.cat([att, adjc], dim=1).permute(0, 2, 3, 1)
        a = self.pair_mlp(pairs).permute(0, 3, 1, 2)
        return x_out, _mask_pairs(a + a.transpose(-1, -2), mask)


class ScoreNetworkA(nn.Module):
    """GDSS's adjacency score network (models/ScoreNetwork_A.py of the paper's code).

    The input adjacency is expanded to its powers ``A, ..., A^c_init`` (channels); each of
    ``num_layers`` attention layers maps (nodes, channels) to new ones (c_hid, the last c_final);
    all channels are concatenated and a 3-layer ELU MLP gives one score per node pair, with
    zero diagonal and padded rows/columns.

    Shapes: x (B, N, F), adj (B, N, N), mask (B, N) -> (B, N, N), symmetric.
    """

    symmetry = "perm"

    def __init__(
        self,
        max_feat_num: int,
        nhid: int,
        num_layers: int,
        num_linears: int,
        c_init: int,
        c_hid: int,
        c_final: int,
        adim: int,
        num_heads: int = 4,
    ) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"`num_layers` must be >= 2, got {num_layers}")
        self.c_init = c_init
        layers = []
        for i in range(num_layers):
            if i == 0:
                args = (max_feat_num, nhid, nhid, c_init, c_hid)
            elif i == num_layers - 1:
                args = (nhid, adim, nhid, c_hid, c_final)
            else:
                args = (nhid, adim, nhid, c_hid, c_hid)
            layers.append(_AttentionLayer(num_linears, *args, num_heads))
        self.layers = nn.ModuleList(layers)
        fdim = c_hid * (num_layers - 1) + c_final + c_init
        self.final = _MLP(3, fdim, 2 * fdim, 1)

    def forward(self, x: Tensor, adj: Tensor, mask: Tensor | None = None) -> Tensor:  # noqa: D102
        adjc = adjacency_powers(adj, self.c_init)
        chans = [adjc]
        for layer in self.layers:
            x, adjc = layer(x, adjc, mask)
            chans.append(adjc)
        score = self.final(torch.cat(chans, dim=1).permute(0, 2, 3, 1)).squeeze(-1)
        n = adj.shape[-1]
        score = score * (1 - torch.eye(n, dtype=score.dtype, device=score.device))
        return _mask_pairs(score, mask)


@dataclass(frozen=True, kw_only=True)
class NetConfig:
    """Sizes of the two networks (GDSS config ``model`` section)."""

    max_nodes: int
    max_feat_num: int
    depth: int
    nhid: int
    adim: int
    num_layers: int
    num_linears: int
    c_init: int
    c_hid: int
    c_final: int
    num_heads: int = 4


class GDSSNet(nn.Module):
    """Both score networks on a state ``(X, A)``: ``net((x, adj), t, node_mask=m)``.

    ``t`` is accepted for the diffcore network signature and ignored, as in GDSS. A buffer
    ``node_counts`` (max_nodes + 1,) holds the training histogram of graph sizes, from which
    sampling draws the node masks (GDSS ``init_flags``).

    Shapes: x (B, N, F), adj (B, N, N), node_mask (B, N) bool -> ((B, N, F), (B, N, N)).
    """

    config_class = NetConfig
    symmetry = "perm"
    node_counts: Tensor

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.net_x = ScoreNetworkX(c.max_feat_num, c.depth, c.nhid)
        self.net_a = ScoreNetworkA(
            c.max_feat_num, c.nhid, c.num_layers, c.num_linears, c.c_init, c.c_hid, c.c_final,
            c.adim, c.num_heads,
        )  # fmt: skip
        self.register_buffer("node_counts", torch.zeros(c.max_nodes + 1))

    def forward(
        self, state: tuple[Tensor, Tensor], t: Tensor | None = None, *, node_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Scores (or noise predictions) for X and A; see the class docstring."""
        x, adj = state
        mask = _fit_mask(node_mask, x.shape[0])
        return self.net_x(x, adj, mask), self.net_a(x, adj, mask)

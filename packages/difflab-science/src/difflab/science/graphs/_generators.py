"""Seeded synthetic graph generators."""

from __future__ import annotations

import networkx as nx
import torch

# Sizes and probabilities of community-small (GraphRNN, You et al. 2018, sec. 4.1; GDSS
# data/data_generators.py, n_community with num_communities=2, max_nodes in 12..20).
COMMUNITY_P_INTRA = 0.7
COMMUNITY_P_INTER = 0.05
COMMUNITY_SIZES = tuple(range(12, 21))


def two_community_graph(
    num_nodes: int,
    *,
    p_intra: float = COMMUNITY_P_INTRA,
    p_inter: float = COMMUNITY_P_INTER,
    generator: torch.Generator | None = None,
) -> nx.Graph:
    """Two Erdos-Renyi communities joined by sparse bridges.

    Each community has ``num_nodes // 2`` nodes and edge probability `p_intra`; each of the
    c^2 cross pairs is a bridge with probability ``2 * p_inter / c`` (GDSS ``n_community``),
    and if none is drawn the first nodes of the two communities are joined.

    Args:
        num_nodes: total size before rounding down to an even number.
        p_intra: edge probability inside a community.
        p_inter: sets the bridge probability as above.
        generator: source of randomness.

    Returns:
        graph with nodes 0..2c-1; nodes 0..c-1 form the first community.
    """
    c = num_nodes // 2
    if c < 1:
        raise ValueError(f"`num_nodes` must be at least 2, got {num_nodes}")
    g = nx.Graph()
    g.add_nodes_from(range(2 * c))
    iu = torch.triu_indices(c, c, offset=1)
    for offset in (0, c):
        keep = torch.rand(iu.shape[1], generator=generator) < p_intra
        g.add_edges_from((iu[:, keep] + offset).T.tolist())
    bridges = torch.rand(c, c, generator=generator) < p_inter * 2 / c
    pairs = torch.nonzero(bridges).tolist()
    g.add_edges_from((u, v + c) for u, v in pairs)
    if not pairs:
        g.add_edge(0, c)
    return g


def community_small(
    num_graphs: int = 100, *, generator: torch.Generator | None = None
) -> list[nx.Graph]:
    """Community-small graphs: total size uniform in 12..20 (even sizes 12-20 after halving).

    GDSS's own file re-seeds both communities with seeds 0 and 1 (``gnp_random_graph(c, 0.7,
    seed=i)``), so its communities repeat for each size; here every community is a fresh draw.

    Args:
        num_graphs: how many graphs.
        generator: source of randomness.

    Returns:
        list of `num_graphs` graphs.
    """
    sizes = torch.randint(
        COMMUNITY_SIZES[0], COMMUNITY_SIZES[-1] + 1, (num_graphs,), generator=generator
    )
    return [two_community_graph(int(n), generator=generator) for n in sizes]

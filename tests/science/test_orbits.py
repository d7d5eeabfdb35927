import itertools

import networkx as nx
import pytest
import torch

from difflab.science.metrics import orbit_counts, orbit_counts_enumerate


def adj_of(edges, n):
    a = torch.zeros(n, n, dtype=torch.int64)
    for u, v in edges:
        a[u, v] = a[v, u] = 1
    return a


def expected(n, table):
    """table: {node: {orbit: count}} -> (n, 15)."""
    out = torch.zeros(n, 15, dtype=torch.int64)
    for v, row in table.items():
        for k, c in row.items():
            out[v, k] = c
    return out


# Counted by hand from the graphlet definitions (induced subgraphs, ORCA numbering).
HAND = {
    "path4": (
        [(0, 1), (1, 2), (2, 3)],
        4,
        {
            0: {0: 1, 1: 1, 4: 1},
            1: {0: 2, 1: 1, 2: 1, 5: 1},
            2: {0: 2, 1: 1, 2: 1, 5: 1},
            3: {0: 1, 1: 1, 4: 1},
        },
    ),
    "star": (
        [(0, 1), (0, 2), (0, 3)],
        4,
        {
            0: {0: 3, 2: 3, 7: 1},
            1: {0: 1, 1: 2, 6: 1},
            2: {0: 1, 1: 2, 6: 1},
            3: {0: 1, 1: 2, 6: 1},
        },
    ),
    "cycle4": (
        [(0, 1), (1, 2), (2, 3), (3, 0)],
        4,
        {v: {0: 2, 1: 2, 2: 1, 8: 1} for v in range(4)},
    ),
    "k4": (
        list(itertools.combinations(range(4), 2)),
        4,
        {v: {0: 3, 3: 3, 14: 1} for v in range(4)},
    ),
    "paw": (
        [(0, 1), (1, 2), (2, 0), (2, 3)],
        4,
        {
            0: {0: 2, 1: 1, 3: 1, 10: 1},
            1: {0: 2, 1: 1, 3: 1, 10: 1},
            2: {0: 3, 2: 2, 3: 1, 11: 1},
            3: {0: 1, 1: 2, 9: 1},
        },
    ),
    "diamond": (
        [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)],
        4,
        {
            0: {0: 3, 2: 1, 3: 2, 13: 1},
            2: {0: 3, 2: 1, 3: 2, 13: 1},
            1: {0: 2, 1: 2, 3: 1, 12: 1},
            3: {0: 2, 1: 2, 3: 1, 12: 1},
        },
    ),
    "cycle5": (
        [(i, (i + 1) % 5) for i in range(5)],
        5,
        {v: {0: 2, 1: 2, 2: 1, 4: 2, 5: 2} for v in range(5)},
    ),
    "triangle+isolated": ([(0, 1), (1, 2), (2, 0)], 4, {v: {0: 2, 3: 1} for v in range(3)}),
}


@pytest.mark.parametrize("name", list(HAND))
def test_hand_counted_graphs(name):
    edges, n, table = HAND[name]
    a = adj_of(edges, n)
    want = expected(n, table)
    assert torch.equal(orbit_counts(a), want)
    assert torch.equal(orbit_counts_enumerate(a), want)


# Independent brute force: every node subset of size 2-4, matched to hand-labelled graphlets
# by networkx isomorphism.
TEMPLATES = [
    ([(0, 1)], {0: 0, 1: 0}),
    ([(0, 1), (1, 2)], {0: 1, 1: 2, 2: 1}),
    ([(0, 1), (1, 2), (2, 0)], {0: 3, 1: 3, 2: 3}),
    ([(0, 1), (1, 2), (2, 3)], {0: 4, 1: 5, 2: 5, 3: 4}),
    ([(0, 1), (0, 2), (0, 3)], {0: 7, 1: 6, 2: 6, 3: 6}),
    ([(0, 1), (1, 2), (2, 3), (3, 0)], {0: 8, 1: 8, 2: 8, 3: 8}),
    ([(0, 1), (1, 2), (2, 0), (2, 3)], {0: 10, 1: 10, 2: 11, 3: 9}),
    ([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)], {0: 13, 2: 13, 1: 12, 3: 12}),
    (list(itertools.combinations(range(4), 2)), {0: 14, 1: 14, 2: 14, 3: 14}),
]


def brute_force(a):
    g = nx.from_numpy_array(a.numpy())
    n = a.shape[0]
    out = torch.zeros(n, 15, dtype=torch.int64)
    templates = []
    for edges, orbit in TEMPLATES:
        t = nx.Graph(edges)
        templates.append((t, orbit))
    for size in (2, 3, 4):
        for sub in itertools.combinations(range(n), size):
            h = g.subgraph(sub)
            if not nx.is_connected(h):
                continue
            for t, orbit in templates:
                if t.number_of_nodes() == size and nx.is_isomorphic(h, t):
                    iso = next(nx.algorithms.isomorphism.GraphMatcher(h, t).isomorphisms_iter())
                    for v in sub:
                        out[v, orbit[iso[v]]] += 1
                    break
    return out


def random_graph(n, p, generator):
    a = (torch.rand(n, n, generator=generator) < p).long().triu(1)
    return a + a.T


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_on_random_graphs(seed):
    g = torch.Generator().manual_seed(seed)
    n = 5 + seed
    a = random_graph(n, [0.2, 0.4, 0.6][seed % 3], g)
    want = brute_force(a)
    assert torch.equal(orbit_counts(a), want)
    assert torch.equal(orbit_counts_enumerate(a), want)


def test_batch_with_padding_matches_single_graphs():
    g = torch.Generator().manual_seed(7)
    sizes = [6, 9, 4]
    n = max(sizes)
    batch = torch.zeros(len(sizes), n, n, dtype=torch.int64)
    mask = torch.zeros(len(sizes), n, dtype=torch.bool)
    singles = []
    for b, s in enumerate(sizes):
        a = random_graph(s, 0.5, g)
        batch[b, :s, :s] = a
        mask[b, :s] = True
        singles.append(orbit_counts(a))
    out = orbit_counts(batch.float(), mask)
    assert out.shape == (3, n, 15) and out.dtype == torch.int64
    for b, s in enumerate(sizes):
        assert torch.equal(out[b, :s], singles[b])
        assert not out[b, s:].any()


def test_degree_column_and_orbit_sum_identities():
    # Every node of an n-node complete graph sees C(n-1, 3) K4s and C(n-1, 2) triangles.
    a = torch.ones(7, 7) - torch.eye(7)
    c = orbit_counts(a)
    assert (c[:, 0] == 6).all() and (c[:, 3] == 15).all() and (c[:, 14] == 20).all()
    assert c[:, [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]].sum() == 0


@pytest.mark.parametrize(
    ("adj", "match"),
    [
        (torch.tensor([[0, 1], [0, 0]]), "symmetric"),
        (torch.tensor([[1, 0], [0, 0]]), "self-loops"),
        (torch.tensor([[0, 2], [2, 0]]), "0/1"),
        (torch.zeros(2, 3), "shape"),
        (torch.tensor([[0.0, float("nan")], [float("nan"), 0.0]]), "NaN"),
    ],
)
def test_rejects_bad_adjacency(adj, match):
    with pytest.raises(ValueError, match=match):
        orbit_counts(adj)


def test_rejects_edges_on_padding_nodes():
    a = torch.ones(1, 3, 3) - torch.eye(3)
    mask = torch.tensor([[True, True, False]])
    with pytest.raises(ValueError, match="masked-out"):
        orbit_counts(a, mask)

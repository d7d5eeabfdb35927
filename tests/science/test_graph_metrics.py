import math

import networkx as nx
import numpy as np
import pytest
import torch

from difflab.science.graphs import community_small
from difflab.science.metrics import (
    GDSS_SETTINGS,
    clustering_coefficients,
    clustering_histogram,
    clustering_mmd,
    degree_histogram,
    degree_mmd,
    graph_mmds,
    kernel_matrix,
    mmd_squared,
    normalized_laplacian_eigenvalues,
    orbit_mmd,
    orbit_statistics,
    spectral_histogram,
    spectral_mmd,
)


def test_degree_histogram_by_hand_and_against_networkx():
    assert degree_histogram(nx.star_graph(4)).tolist() == [0, 4, 0, 0, 1]
    assert degree_histogram(nx.path_graph(4)).tolist() == [0, 2, 2]
    g = nx.Graph([(0, 1)])
    g.add_node(2)
    assert degree_histogram(g).tolist() == [1, 2]
    for seed in range(3):
        h = nx.gnp_random_graph(15, 0.3, seed=seed)
        assert degree_histogram(h).tolist() == nx.degree_histogram(h)


def test_clustering_by_hand_and_against_networkx():
    # paw: triangle 0-1-2 with pendant 3 on node 2
    paw = nx.Graph([(0, 1), (1, 2), (2, 0), (2, 3)])
    assert clustering_coefficients(paw).tolist() == [1.0, 1.0, 1 / 3, 0.0]
    hist = clustering_histogram(paw)
    assert hist.shape == (100,)
    assert hist[0] == 1 and hist[33] == 1 and hist[99] == 2 and hist.sum() == 4
    for seed in range(3):
        h = nx.gnp_random_graph(20, 0.4, seed=seed)
        want = nx.clustering(h)
        got = clustering_coefficients(h).tolist()
        assert got == [want[v] for v in h.nodes]  # bit-identical, so bins agree too
        ref, _ = np.histogram(list(want.values()), bins=100, range=(0, 1))
        assert clustering_histogram(h).tolist() == ref.tolist()


def test_normalized_laplacian_spectra():
    # K_n: 0 once and n / (n - 1) with multiplicity n - 1; even cycles reach 2.
    eig = normalized_laplacian_eigenvalues(nx.complete_graph(5))
    assert eig.tolist() == pytest.approx([0, 1.25, 1.25, 1.25, 1.25], abs=1e-12)
    eig = normalized_laplacian_eigenvalues(nx.cycle_graph(4))
    assert eig.tolist() == pytest.approx([0, 1, 1, 2], abs=1e-12)
    g = nx.Graph([(0, 1)])
    g.add_node(2)  # isolated node: zero row
    assert normalized_laplacian_eigenvalues(g).tolist() == pytest.approx([0, 0, 2], abs=1e-12)
    h = spectral_histogram(nx.cycle_graph(4))
    assert h.sum() == pytest.approx(1.0)
    # bin width (2 + 1e-5) / 200: 1.0 falls in bin floor(200 * 1.00001 / 2.00001) = 100
    assert h[0] == 0.25 and h[-1] == 0.25 and h[100] == 0.5
    ref = nx.normalized_laplacian_matrix(nx.petersen_graph()).toarray()
    assert normalized_laplacian_eigenvalues(nx.petersen_graph()).numpy() == pytest.approx(
        np.linalg.eigvalsh(ref), abs=1e-10
    )


def test_kernels_by_hand():
    p = torch.tensor([[0.0, 2 / 3, 1 / 3]])
    q = torch.tensor([[0.0, 0.0, 1.0]])
    # EMD between the pmfs = |CDF difference| summed = 2/3
    assert kernel_matrix(p, q, kernel="gaussian_emd").item() == pytest.approx(math.exp(-2 / 9))
    assert kernel_matrix(p, q, kernel="gaussian_emd", distance_scaling=2).item() == pytest.approx(
        math.exp(-1 / 18)
    )
    l2sq = (2 / 3) ** 2 + (2 / 3) ** 2
    assert kernel_matrix(p, q, kernel="gaussian", sigma=2).item() == pytest.approx(
        math.exp(-l2sq / 8)
    )
    tv = (2 / 3 + 2 / 3) / 2
    assert kernel_matrix(p, q, kernel="gaussian_tv").item() == pytest.approx(math.exp(-(tv**2) / 2))
    with pytest.raises(ValueError, match="unknown kernel"):
        kernel_matrix(p, q, kernel="laplace")


def test_degree_mmd_by_hand():
    # P3 degree pmf (0, 2/3, 1/3), triangle (0, 0, 1): EMD 2/3.
    got = degree_mmd([nx.path_graph(3)], [nx.complete_graph(3)])
    assert got == pytest.approx(2 - 2 * math.exp(-2 / 9))
    # histograms of unequal length are zero-padded: star_3 (0, 3, 0, 1) vs edge (0, 2)
    got = degree_mmd([nx.star_graph(3)], [nx.path_graph(2)])
    emd = abs(0.75 - 1.0) + abs(0.75 - 1.0)  # CDFs (0, .75, .75, 1) vs (0, 1, 1, 1)
    assert got == pytest.approx(2 - 2 * math.exp(-(emd**2) / 2))


def test_mmd_zero_for_identical_sets_and_positive_otherwise():
    gen = torch.Generator().manual_seed(0)
    cs = community_small(12, generator=gen)
    other = [nx.gnp_random_graph(16, 0.15, seed=s) for s in range(12)]
    same = graph_mmds(cs, list(cs))
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in same.values())
    diff = graph_mmds(cs, other)
    assert set(diff) == {"degree", "cluster", "orbit", "spectral"}
    assert all(v > 1e-3 for v in diff.values())
    # order inside a set does not matter
    assert degree_mmd(cs, other) == pytest.approx(degree_mmd(cs[::-1], other[::-1]))


def test_mmd_squared_is_symmetric_and_biased_estimate():
    x = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])]
    y = [torch.tensor([1.0, 0.0])]
    k = math.exp(-1 / 2)  # EMD between the two pmfs is 1
    # V-statistic: mean over all pairs, diagonal included
    want = (2 + 2 * k) / 4 + 1 - 2 * (1 + k) / 2
    assert mmd_squared(x, y) == pytest.approx(want)
    assert mmd_squared(y, x) == pytest.approx(want)
    with pytest.raises(ValueError, match="sums to 0"):
        mmd_squared([torch.zeros(3)], y)
    with pytest.raises(ValueError, match="at least one"):
        mmd_squared([], y)


def test_orbit_statistics_and_mmd():
    stats = orbit_statistics([nx.complete_graph(4), nx.path_graph(4)])
    assert stats.shape == (2, 15)
    assert stats[0].tolist() == [3, 0, 0, 3] + [0] * 10 + [1]
    # path: orbit 0 mean 1.5, orbit 1 mean 1, orbit 2 mean 0.5, orbits 4 and 5 mean 0.5
    assert stats[1, [0, 1, 2, 4, 5]].tolist() == [1.5, 1.0, 0.5, 0.5, 0.5]
    a = [nx.complete_graph(4)]
    b = [nx.path_graph(4)]
    d2 = float(((stats[0] - stats[1]) ** 2).sum())
    assert orbit_mmd(a, b) == pytest.approx(2 - 2 * math.exp(-d2 / (2 * 30.0**2)))


def test_settings_are_gdss():
    assert GDSS_SETTINGS["degree"].kernel == "gaussian_emd" and GDSS_SETTINGS["degree"].sigma == 1
    assert GDSS_SETTINGS["cluster"].sigma == 0.1
    assert GDSS_SETTINGS["orbit"].kernel == "gaussian" and GDSS_SETTINGS["orbit"].sigma == 30
    assert GDSS_SETTINGS["spectral"].kernel == "gaussian_emd"


def test_accepts_adjacency_tensors_and_drops_empty_graphs():
    a = torch.tensor([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    empty = nx.Graph()
    ref = [nx.complete_graph(3)]
    assert clustering_mmd(ref, [a, empty]) == pytest.approx(0.0, abs=1e-12)
    assert spectral_mmd(ref, [a.numpy()]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="no graph"):
        degree_mmd(ref, [empty])


def test_rejects_self_loops_and_weights():
    g = nx.path_graph(3)
    g.add_edge(1, 1)
    with pytest.raises(ValueError, match="self-loops"):
        degree_mmd([g], [nx.path_graph(3)])
    with pytest.raises(ValueError, match="0/1"):
        degree_histogram(torch.tensor([[0.0, 0.5], [0.5, 0.0]]))
    with pytest.raises(ValueError, match="unknown method"):
        graph_mmds([g], [g], methods=["nspdk"])

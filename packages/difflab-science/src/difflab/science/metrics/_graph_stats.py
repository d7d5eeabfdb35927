"""Graph statistics and their MMDs, the GraphRNN protocol with GDSS's settings.

GDSS (harryjo97/GDSS: evaluation/stats.py, utils/loader.py ``load_eval_settings``) compares
generated graphs with the test graphs by the squared MMD of four per-graph descriptors:

=========== ====================================== ============== ===== ===============
method      descriptor                             kernel         sigma distance scale
=========== ====================================== ============== ===== ===============
degree      degree histogram (nx.degree_histogram) gaussian_emd   1     1
cluster     clustering coefficients, 100 bins      gaussian_emd   0.1   100 (= bins)
            on [0, 1]
orbit       mean count per node of the 15 orbits   gaussian       30    --
            of 2-4 node graphlets (orca node 4)    (not normalised)
spectral    normalised-Laplacian eigenvalues,      gaussian_emd   1     1
            200 bins on [-1e-5, 2]
=========== ====================================== ============== ===== ===============

Graphs without nodes are dropped from both sets first (GDSS drops them from the generated set).
Graphs must be simple: no self-loops (GDSS removes them from generated adjacencies, see
:func:`difflab.science.graphs.from_dense`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
import torch
from torch import Tensor

from ..graphs._convert import GraphLike, to_adjacency
from ._kernels import mmd_squared
from ._orbits import orbit_counts

CLUSTERING_BINS = 100  # GDSS evaluation/stats.py, clustering_stats(bins=100)
SPECTRAL_BINS = 200  # GDSS spectral_worker: np.histogram(eigs, bins=200, range=(-1e-5, 2))
SPECTRAL_RANGE = (-1e-5, 2.0)
# Adjacency blocks of B * N^2 entries at most when batching orbit counts over graphs.
_ORBIT_BLOCK = 1 << 22


@dataclass(frozen=True)
class MMDSetting:
    """Kernel settings of one GDSS statistic."""

    kernel: str
    sigma: float


# GDSS utils/loader.py load_eval_settings and evaluation/stats.py
GDSS_SETTINGS = {
    "degree": MMDSetting("gaussian_emd", 1.0),
    "cluster": MMDSetting("gaussian_emd", 0.1),
    "orbit": MMDSetting("gaussian", 30.0),
    "spectral": MMDSetting("gaussian_emd", 1.0),
}


def _simple_adjacency(graph: GraphLike) -> np.ndarray:
    # numpy, not torch: these per-graph steps are many tiny operations.
    if isinstance(graph, nx.Graph):
        if graph.is_directed() or graph.is_multigraph():
            raise ValueError(f"expected an undirected simple graph, got {type(graph).__name__}")
        a = nx.to_numpy_array(graph, nodelist=list(graph.nodes), weight=None)
    else:
        a = to_adjacency(graph, dtype=torch.float64).numpy()
    if not ((a == 0) | (a == 1)).all():
        raise ValueError("graph adjacency must hold 0/1 entries; quantise generated graphs first")
    if not (a == a.T).all():
        raise ValueError("graph adjacency must be symmetric (an undirected graph)")
    if a.diagonal().any():
        raise ValueError("graph has self-loops; remove them (GDSS does) before computing metrics")
    return a


def _num_nodes(graph: GraphLike) -> int:
    return graph.number_of_nodes() if isinstance(graph, nx.Graph) else int(graph.shape[0])


def degree_histogram(graph: GraphLike) -> Tensor:
    """Counts of nodes per degree 0..max degree, as ``nx.degree_histogram``.

    Returns:
        (max_degree + 1,) int64.
    """
    deg = _simple_adjacency(graph).sum(-1).round().astype(np.int64)
    return torch.from_numpy(np.bincount(deg, minlength=1).astype(np.int64))


def _clustering(a: np.ndarray) -> np.ndarray:
    d = a.sum(-1)
    t2 = ((a @ a) * a).sum(-1)  # twice the triangles at each node, an exact integer
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 1, t2 / (d * (d - 1)), 0.0)


def clustering_coefficients(graph: GraphLike) -> Tensor:
    """Local clustering coefficient per node, 2 t / (d (d - 1)) (0 below degree 2).

    Computed in float64 from integer triangle counts exactly as ``nx.clustering``.

    Returns:
        (n,) float64.
    """
    return torch.from_numpy(_clustering(_simple_adjacency(graph)))


def clustering_histogram(graph: GraphLike, bins: int = CLUSTERING_BINS) -> Tensor:
    """Histogram of clustering coefficients over `bins` equal bins on [0, 1] (np.histogram).

    Returns:
        (bins,) int64 counts.
    """
    hist, _ = np.histogram(_clustering(_simple_adjacency(graph)), bins=bins, range=(0.0, 1.0))
    return torch.from_numpy(hist.astype(np.int64))


def _laplacian_eigenvalues(a: np.ndarray) -> np.ndarray:
    d = a.sum(-1)
    with np.errstate(divide="ignore"):
        inv_sqrt = np.where(d > 0, 1.0 / np.sqrt(d), 0.0)
    lap = inv_sqrt[:, None] * (np.diag(d) - a) * inv_sqrt[None, :]
    return np.linalg.eigvalsh(lap)


def normalized_laplacian_eigenvalues(graph: GraphLike) -> Tensor:
    """Eigenvalues of L = D^-1/2 (D - A) D^-1/2 (isolated nodes give rows of 0), ascending.

    Returns:
        (n,) float64 in [0, 2] up to rounding.
    """
    return torch.from_numpy(_laplacian_eigenvalues(_simple_adjacency(graph)))


def spectral_histogram(graph: GraphLike, bins: int = SPECTRAL_BINS) -> Tensor:
    """PMF of normalised-Laplacian eigenvalues over `bins` bins on [-1e-5, 2] (GDSS).

    Eigenvalues are clamped to [0, 2] first, so that an eigenvalue 2 of a bipartite graph that
    rounding puts at 2 + 1e-16 is not dropped (np.histogram would drop it).

    Returns:
        (bins,) float64 summing to 1.
    """
    eig = np.clip(_laplacian_eigenvalues(_simple_adjacency(graph)), 0.0, 2.0)
    hist, _ = np.histogram(eig, bins=bins, range=SPECTRAL_RANGE)
    return torch.from_numpy(hist / max(hist.sum(), 1))


def orbit_statistics(graphs: Sequence[GraphLike]) -> Tensor:
    """Mean count per node of each of the 15 orbits, one row per graph (GDSS orbit_stats_all).

    Args:
        graphs: B graphs with at least one node each.

    Returns:
        (B, 15) float64.
    """
    adjs = [_simple_adjacency(g) for g in graphs]
    out = torch.zeros(len(adjs), 15, dtype=torch.float64)
    order = sorted(range(len(adjs)), key=lambda i: adjs[i].shape[0])
    start = 0
    while start < len(order):
        n_max = adjs[order[start]].shape[0]
        stop = start + 1
        while stop < len(order):
            n_next = adjs[order[stop]].shape[0]
            if (stop - start + 1) * n_next * n_next > _ORBIT_BLOCK:
                break
            n_max = n_next
            stop += 1
        idx = order[start:stop]
        batch = torch.zeros(len(idx), n_max, n_max, dtype=torch.bool)
        for b, i in enumerate(idx):
            n = adjs[i].shape[0]
            batch[b, :n, :n] = torch.from_numpy(adjs[i] != 0)
        counts = orbit_counts(batch).double().sum(1)  # padding rows are 0
        for b, i in enumerate(idx):
            out[i] = counts[b] / max(adjs[i].shape[0], 1)
        start = stop
    return out


def _nonempty(graphs: Sequence[GraphLike], which: str) -> list[GraphLike]:
    kept = [g for g in graphs if _num_nodes(g) > 0]
    if not kept:
        raise ValueError(f"`{which}` has no graph with at least one node")
    return kept


def degree_mmd(
    reference: Sequence[GraphLike],
    generated: Sequence[GraphLike],
    *,
    kernel: str = "gaussian_emd",
    sigma: float = 1.0,
) -> float:
    """Squared MMD of degree histograms (GDSS degree_stats; defaults as GDSS).

    Args:
        reference: test graphs (networkx or (n, n) adjacencies).
        generated: generated graphs.
        kernel: ``"gaussian_emd"``, ``"gaussian"`` or ``"gaussian_tv"``.
        sigma: kernel bandwidth.
    """
    ref, gen = _nonempty(reference, "reference"), _nonempty(generated, "generated")
    return mmd_squared(
        [degree_histogram(g) for g in ref],
        [degree_histogram(g) for g in gen],
        kernel=kernel,
        sigma=sigma,
    )


def clustering_mmd(
    reference: Sequence[GraphLike],
    generated: Sequence[GraphLike],
    *,
    kernel: str = "gaussian_emd",
    sigma: float = 0.1,
    bins: int = CLUSTERING_BINS,
) -> float:
    """Squared MMD of clustering-coefficient histograms (GDSS clustering_stats).

    The EMD ground distance is measured in units of the coefficient (``distance_scaling=bins``),
    as GDSS does for ``gaussian_emd``.
    """
    ref, gen = _nonempty(reference, "reference"), _nonempty(generated, "generated")
    return mmd_squared(
        [clustering_histogram(g, bins) for g in ref],
        [clustering_histogram(g, bins) for g in gen],
        kernel=kernel,
        sigma=sigma,
        distance_scaling=bins if kernel == "gaussian_emd" else 1.0,
    )


def orbit_mmd(
    reference: Sequence[GraphLike],
    generated: Sequence[GraphLike],
    *,
    kernel: str = "gaussian",
    sigma: float = 30.0,
) -> float:
    """Squared MMD of mean 4-node orbit counts (GDSS orbit_stats_all: all 15 orbits)."""
    ref, gen = _nonempty(reference, "reference"), _nonempty(generated, "generated")
    return mmd_squared(
        list(orbit_statistics(ref)),
        list(orbit_statistics(gen)),
        kernel=kernel,
        sigma=sigma,
        normalize=False,
    )


def spectral_mmd(
    reference: Sequence[GraphLike],
    generated: Sequence[GraphLike],
    *,
    kernel: str = "gaussian_emd",
    sigma: float = 1.0,
    bins: int = SPECTRAL_BINS,
) -> float:
    """Squared MMD of normalised-Laplacian spectra histograms (GDSS spectral_stats)."""
    ref, gen = _nonempty(reference, "reference"), _nonempty(generated, "generated")
    return mmd_squared(
        [spectral_histogram(g, bins) for g in ref],
        [spectral_histogram(g, bins) for g in gen],
        kernel=kernel,
        sigma=sigma,
    )


_METHODS = {
    "degree": degree_mmd,
    "cluster": clustering_mmd,
    "orbit": orbit_mmd,
    "spectral": spectral_mmd,
}


def graph_mmds(
    reference: Sequence[GraphLike],
    generated: Sequence[GraphLike],
    methods: Sequence[str] = ("degree", "cluster", "orbit", "spectral"),
) -> dict[str, float]:
    """GDSS's generic-graph evaluation: one squared MMD per method, with GDSS's kernels.

    Args:
        reference: test graphs.
        generated: generated graphs.
        methods: any of ``"degree"``, ``"cluster"``, ``"orbit"``, ``"spectral"``.

    Returns:
        {method: MMD^2}.
    """
    unknown = [m for m in methods if m not in _METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; expected some of {', '.join(_METHODS)}")
    out = {}
    for m in methods:
        s = GDSS_SETTINGS[m]
        out[m] = _METHODS[m](reference, generated, kernel=s.kernel, sigma=s.sigma)
    return out

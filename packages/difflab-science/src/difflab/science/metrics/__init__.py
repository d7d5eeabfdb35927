"""Metrics of generated graphs and molecules: the GraphRNN / GDSS evaluation protocol.

Graphs: squared MMD of degree, clustering, 4-node orbit and spectral statistics with GDSS's
kernels (:func:`graph_mmds`), on our own exact orbit counter (:func:`orbit_counts`; no ORCA
binary). Molecules: validity (with and without correction), uniqueness, novelty, NSPDK MMD
(our own NSPDK) and FCD (ChemNet from the ``fcd`` package, offline).
"""

from ._fcd import chemnet_activations, fcd_score
from ._graph_stats import (
    CLUSTERING_BINS,
    GDSS_SETTINGS,
    SPECTRAL_BINS,
    MMDSetting,
    clustering_coefficients,
    clustering_histogram,
    clustering_mmd,
    degree_histogram,
    degree_mmd,
    graph_mmds,
    normalized_laplacian_eigenvalues,
    orbit_mmd,
    orbit_statistics,
    spectral_histogram,
    spectral_mmd,
)
from ._kernels import KERNELS, kernel_matrix, mmd_squared
from ._mol_eval import molecule_metrics
from ._molecules import (
    canonical_set,
    novelty,
    uniqueness,
    valid_canonical,
    validity,
    validity_without_correction,
)
from ._nspdk import NSPDK_DISTANCE, NSPDK_RADIUS, nspdk_kernel, nspdk_mmd
from ._orbits import NUM_ORBITS, orbit_counts, orbit_counts_enumerate

__all__ = [
    "CLUSTERING_BINS",
    "GDSS_SETTINGS",
    "KERNELS",
    "NSPDK_DISTANCE",
    "NSPDK_RADIUS",
    "NUM_ORBITS",
    "SPECTRAL_BINS",
    "MMDSetting",
    "canonical_set",
    "chemnet_activations",
    "clustering_coefficients",
    "clustering_histogram",
    "clustering_mmd",
    "degree_histogram",
    "degree_mmd",
    "fcd_score",
    "graph_mmds",
    "kernel_matrix",
    "mmd_squared",
    "molecule_metrics",
    "normalized_laplacian_eigenvalues",
    "novelty",
    "nspdk_kernel",
    "nspdk_mmd",
    "orbit_counts",
    "orbit_counts_enumerate",
    "orbit_mmd",
    "orbit_statistics",
    "spectral_histogram",
    "spectral_mmd",
    "uniqueness",
    "valid_canonical",
    "validity",
    "validity_without_correction",
]

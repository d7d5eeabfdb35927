"""Molecules as graphs (GDSS / MoFlow representation) and the QM9 / ZINC250k loaders."""

from ._convert import (
    QM9_ATOMS,
    ZINC250K_ATOMS,
    InvalidMoleculeError,
    InvalidSmilesError,
    MolGraph,
    canonical_smiles,
    graph_to_mol,
    graph_to_smiles,
    largest_fragment,
    mol_to_graph,
    mol_to_nx,
    smiles_to_graph,
    smiles_to_mol,
    valence_problems,
)
from ._datasets import (
    MOLECULE_URLS,
    QM9_MAX_ATOMS,
    ZINC250K_MAX_ATOMS,
    MoleculeDataset,
    download_molecule_dataset,
    load_qm9,
    load_zinc250k,
)
from ._dense import dense_to_mols, mols_to_dense

__all__ = [
    "MOLECULE_URLS",
    "QM9_ATOMS",
    "QM9_MAX_ATOMS",
    "ZINC250K_ATOMS",
    "ZINC250K_MAX_ATOMS",
    "InvalidMoleculeError",
    "InvalidSmilesError",
    "MolGraph",
    "MoleculeDataset",
    "canonical_smiles",
    "dense_to_mols",
    "download_molecule_dataset",
    "graph_to_mol",
    "graph_to_smiles",
    "largest_fragment",
    "load_qm9",
    "load_zinc250k",
    "mol_to_graph",
    "mol_to_nx",
    "mols_to_dense",
    "smiles_to_graph",
    "smiles_to_mol",
    "valence_problems",
]

"""Molecules as graphs: heavy atoms with types, kekulised bond orders, formal charges.

The representation of GDSS and MoFlow (harryjo97/GDSS: utils/smile_to_graph.py, kekulize=True;
utils/mol_utils.py): one node per heavy atom, typed by a fixed vocabulary (QM9: C, N, O, F;
ZINC250k: C, N, O, F, P, S, Cl, Br, I), and an adjacency holding the bond order of the
kekulised molecule, 1 single, 2 double, 3 triple, 0 no bond. Hydrogens are implied by valence.
Stereochemistry is not represented. Unlike GDSS we also keep formal charges, so charged
molecules (QM9's zwitterions, nitro groups) survive a round trip; graphs without charges (e.g.
generated ones) get GDSS's rule: N, O or S with one bond more than its usual valence is +1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import torch
from rdkit import Chem, rdBase
from torch import Tensor

QM9_ATOMS = ("C", "N", "O", "F")
ZINC250K_ATOMS = ("C", "N", "O", "F", "P", "S", "Cl", "Br", "I")
_BOND_ORDER = {
    Chem.BondType.SINGLE: 1,
    Chem.BondType.DOUBLE: 2,
    Chem.BondType.TRIPLE: 3,
}
_BOND_TYPE = {v: k for k, v in _BOND_ORDER.items()}
# GDSS utils/mol_utils.py ATOM_VALENCY and construct_mol: these atoms get a +1 charge when their
# bond orders add up to one more than this.
_CHARGEABLE_VALENCE = {"N": 3, "O": 2, "S": 2}


class InvalidSmilesError(ValueError):
    """A SMILES string that RDKit cannot read or that fails its valence checks."""


class InvalidMoleculeError(ValueError):
    """A molecular graph that is not a valid molecule (valence or bond-order problems)."""


@dataclass(frozen=True, eq=False)  # holds tensors: compare fields explicitly
class MolGraph:
    """A molecule as a typed graph.

    Attributes:
        atoms: (n,) int64 index of each atom's element in `atom_types`.
        bonds: (n, n) int64 symmetric bond orders in {0, 1, 2, 3}, zero diagonal.
        atom_types: element symbols, the one-hot vocabulary.
        charges: (n,) int64 formal charges, or None to infer them with GDSS's rule.
    """

    atoms: Tensor
    bonds: Tensor
    atom_types: tuple[str, ...]
    charges: Tensor | None = None

    @property
    def num_atoms(self) -> int:
        """Number of heavy atoms n."""
        return int(self.atoms.shape[0])

    def one_hot(self) -> Tensor:
        """(n, len(atom_types)) float32 one-hot atom types."""
        return torch.nn.functional.one_hot(self.atoms, len(self.atom_types)).float()

    def symbols(self) -> list[str]:
        """Element symbol of each atom."""
        return [self.atom_types[int(i)] for i in self.atoms]


def smiles_to_mol(smiles: str) -> Chem.Mol:
    """Parse and sanitise a SMILES string.

    Raises:
        InvalidSmilesError: naming the SMILES and, where RDKit says, what is wrong with it.
    """
    if not isinstance(smiles, str) or not smiles.strip():
        raise InvalidSmilesError(f"invalid SMILES {smiles!r}: expected a non-empty string")
    with rdBase.BlockLogs():
        raw = Chem.MolFromSmiles(smiles, sanitize=False)
        if raw is None:
            raise InvalidSmilesError(f"invalid SMILES {smiles!r}: RDKit cannot parse it")
        problems = [p.Message() for p in Chem.DetectChemistryProblems(raw)]
        mol = Chem.MolFromSmiles(smiles) if not problems else None
    if mol is None:
        why = "; ".join(problems) or "sanitisation failed"
        raise InvalidSmilesError(f"invalid SMILES {smiles!r}: {why}")
    return mol


def mol_to_graph(mol: Chem.Mol, atom_types: Sequence[str] = QM9_ATOMS) -> MolGraph:
    """Kekulised graph of an RDKit molecule (hydrogens implicit).

    Args:
        mol: a sanitised molecule.
        atom_types: element vocabulary; every heavy atom must be in it.

    Returns:
        MolGraph with formal charges.
    """
    types = tuple(atom_types)
    mol = Chem.Mol(Chem.RemoveHs(mol))
    try:
        Chem.Kekulize(mol, clearAromaticFlags=True)
    except Chem.KekulizeException as err:
        raise InvalidMoleculeError(f"cannot kekulise {Chem.MolToSmiles(mol)!r}: {err}") from err
    n = mol.GetNumAtoms()
    atoms, charges = [0] * n, [0] * n
    for atom in mol.GetAtoms():
        sym = atom.GetSymbol()
        if sym not in types:
            raise ValueError(f"atom {atom.GetIdx()} is {sym}, not in the vocabulary {types}")
        if atom.GetNumRadicalElectrons():
            raise ValueError(
                f"atom {atom.GetIdx()} ({sym}) is a radical; molecular graphs imply "
                "hydrogens from valence and cannot hold radicals"
            )
        atoms[atom.GetIdx()] = types.index(sym)
        charges[atom.GetIdx()] = atom.GetFormalCharge()
    bonds = [[0] * n for _ in range(n)]
    for bond in mol.GetBonds():
        order = _BOND_ORDER.get(bond.GetBondType())
        if order is None:
            raise ValueError(f"bond {bond.GetIdx()} is {bond.GetBondType()} after kekulisation")
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        bonds[i][j] = bonds[j][i] = order
    # Python lists first: per-element writes into small tensors cost more than the chemistry.
    return MolGraph(
        atoms=torch.tensor(atoms, dtype=torch.int64),
        bonds=torch.tensor(bonds, dtype=torch.int64).reshape(n, n),
        atom_types=types,
        charges=torch.tensor(charges, dtype=torch.int64),
    )


def smiles_to_graph(smiles: str, atom_types: Sequence[str] = QM9_ATOMS) -> MolGraph:
    """Kekulised molecular graph of a SMILES string (see :func:`mol_to_graph`).

    >>> g = smiles_to_graph("C=CC#N")
    >>> g.symbols(), g.bonds[0].tolist(), g.bonds[2].tolist()
    (['C', 'C', 'C', 'N'], [0, 2, 0, 0], [0, 1, 0, 3])
    """
    mol = smiles_to_mol(smiles)
    try:
        return mol_to_graph(mol, atom_types)
    except ValueError as err:
        raise type(err)(f"SMILES {smiles!r}: {err}") from err


def _check_graph(graph: MolGraph) -> tuple[list[int], list[list[int]]]:
    """Validate shapes and bond orders; return atoms and bonds as Python lists."""
    n = graph.num_atoms
    if graph.atoms.ndim != 1:
        raise ValueError(f"`atoms` must have shape (n,), got {tuple(graph.atoms.shape)}")
    if tuple(graph.bonds.shape) != (n, n):
        raise ValueError(f"`bonds` must have shape ({n}, {n}), got {tuple(graph.bonds.shape)}")
    if graph.charges is not None and tuple(graph.charges.shape) != (n,):
        raise ValueError(f"`charges` must have shape ({n},), got {tuple(graph.charges.shape)}")
    atoms = [int(a) for a in graph.atoms.tolist()]
    bonds = [[int(b) for b in row] for row in graph.bonds.tolist()]
    if any(not 0 <= a < len(graph.atom_types) for a in atoms):
        raise ValueError(f"`atoms` must index into atom_types {graph.atom_types}")
    for i in range(n):
        if bonds[i][i]:
            raise InvalidMoleculeError(f"atom {i} is bonded to itself (non-zero diagonal)")
        for j in range(i + 1, n):
            if bonds[i][j] != bonds[j][i]:
                raise InvalidMoleculeError(f"bond matrix is not symmetric at ({i}, {j})")
            if bonds[i][j] not in (0, 1, 2, 3):
                raise InvalidMoleculeError(
                    f"bond ({i}, {j}) has order {bonds[i][j]}; expected 0, 1, 2 or 3"
                )
    return atoms, bonds


def valence_problems(mol: Chem.Mol) -> list[str]:
    """RDKit's complaints about a molecule (valences, aromaticity); empty if it is fine."""
    with rdBase.BlockLogs():
        return [p.Message() for p in Chem.DetectChemistryProblems(mol)]


def graph_to_mol(graph: MolGraph) -> Chem.Mol:
    """Build and sanitise the RDKit molecule of a graph, with no correction.

    Charges come from ``graph.charges``; when it is None, GDSS's rule applies (N, O, S whose
    bond orders add up to one more than 3, 2, 2 get charge +1).

    Raises:
        InvalidMoleculeError: naming each atom whose valence is not allowed.
    """
    atoms, bonds = _check_graph(graph)
    charges = None if graph.charges is None else graph.charges.tolist()
    rw = Chem.RWMol()
    for i, a in enumerate(atoms):
        sym = graph.atom_types[a]
        atom = Chem.Atom(sym)
        if charges is not None:
            atom.SetFormalCharge(int(charges[i]))
        elif sym in _CHARGEABLE_VALENCE and sum(bonds[i]) == _CHARGEABLE_VALENCE[sym] + 1:
            atom.SetFormalCharge(1)
        rw.AddAtom(atom)
    for i in range(len(atoms)):
        for j in range(i + 1, len(atoms)):
            if bonds[i][j]:
                rw.AddBond(i, j, _BOND_TYPE[bonds[i][j]])
    mol = rw.GetMol()
    problems = valence_problems(mol)
    if problems:
        raise InvalidMoleculeError("invalid molecular graph: " + "; ".join(problems))
    with rdBase.BlockLogs():
        Chem.SanitizeMol(mol)
    return mol


def graph_to_smiles(graph: MolGraph) -> str:
    """Canonical SMILES of a molecular graph (raises InvalidMoleculeError if invalid)."""
    return Chem.MolToSmiles(graph_to_mol(graph))


def canonical_smiles(smiles: str, *, isomeric: bool = True) -> str:
    """RDKit canonical SMILES (raises InvalidSmilesError naming an invalid input)."""
    return Chem.MolToSmiles(smiles_to_mol(smiles), isomericSmiles=isomeric)


def largest_fragment(mol: Chem.Mol) -> Chem.Mol:
    """The fragment with the most atoms.

    GDSS keeps the largest fragment for its metrics (``valid_mol_can_with_seg`` picks the
    longest SMILES, the same fragment in all but rare ties).
    """
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    return max(frags, key=lambda m: m.GetNumAtoms()) if frags else mol


def mol_to_nx(mol: Chem.Mol) -> nx.Graph:
    """Labelled networkx graph of a molecule, as GDSS's ``mols_to_nx`` (used for NSPDK).

    Node ``label``: element symbol; edge ``label``: ``int(bond order)``, so aromatic bonds of a
    non-kekulised molecule count as 1, as in GDSS.
    """
    g = nx.Graph()
    for atom in mol.GetAtoms():
        g.add_node(atom.GetIdx(), label=atom.GetSymbol())
    for bond in mol.GetBonds():
        g.add_edge(
            bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), label=int(bond.GetBondTypeAsDouble())
        )
    return g

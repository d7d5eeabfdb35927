"""Validity, uniqueness and novelty of generated molecules (MOSES definitions, as GDSS).

GDSS (sampler.py, Sampler_mol) reports: validity without correction (fraction of generated
graphs that are valid molecules as built), and, from MOSES ``get_all_metrics``: uniqueness
(distinct canonical SMILES among the valid ones, over the number of valid ones) and novelty
(distinct valid canonical SMILES absent from the training set, over the distinct valid ones).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rdkit import Chem

from ..molecules._convert import InvalidMoleculeError, MolGraph, graph_to_mol, smiles_to_mol


def _canonical_or_none(smiles: str | None) -> str | None:
    if not smiles:
        return None
    try:
        mol = smiles_to_mol(smiles)
    except ValueError:
        return None
    return Chem.MolToSmiles(mol) if mol.GetNumAtoms() else None


def valid_canonical(smiles: Sequence[str | None]) -> list[str]:
    """Canonical SMILES of the valid entries, in order (invalid, empty and None dropped)."""
    return [c for c in map(_canonical_or_none, smiles) if c is not None]


def validity(smiles: Sequence[str | None]) -> float:
    """Fraction of entries that RDKit parses and sanitises into a molecule with an atom.

    Args:
        smiles: generated SMILES; None or "" count as invalid.
    """
    if len(smiles) == 0:
        raise ValueError("`smiles` is empty")
    return len(valid_canonical(smiles)) / len(smiles)


def validity_without_correction(graphs: Sequence[MolGraph]) -> float:
    """Fraction of generated molecular graphs that are valid molecules as they are.

    A graph is valid when :func:`difflab.science.molecules.graph_to_mol` builds and sanitises
    it (GDSS's +1 charge rule for N, O, S included; no bond is removed).
    """
    if len(graphs) == 0:
        raise ValueError("`graphs` is empty")
    ok = 0
    for g in graphs:
        try:
            graph_to_mol(g)
        except InvalidMoleculeError:
            continue
        ok += 1
    return ok / len(graphs)


def uniqueness(smiles: Sequence[str | None]) -> float:
    """Distinct canonical SMILES among the valid entries, over the number of valid entries."""
    valid = valid_canonical(smiles)
    if not valid:
        raise ValueError("no valid molecule among the generated SMILES; uniqueness undefined")
    return len(set(valid)) / len(valid)


def canonical_set(smiles: Iterable[str]) -> set[str]:
    """Canonical SMILES of a reference set (e.g. training data); an invalid entry raises."""
    return {Chem.MolToSmiles(smiles_to_mol(s)) for s in smiles}


def novelty(smiles: Sequence[str | None], training: Iterable[str] | set[str]) -> float:
    """Distinct valid generated molecules absent from the training set, over distinct valid ones.

    Args:
        smiles: generated SMILES.
        training: training SMILES (canonicalised here), or the set returned by
            :func:`canonical_set` to reuse it across calls.
    """
    unique = set(valid_canonical(smiles))
    if not unique:
        raise ValueError("no valid molecule among the generated SMILES; novelty undefined")
    train = training if isinstance(training, set) else canonical_set(training)
    return len(unique - train) / len(unique)

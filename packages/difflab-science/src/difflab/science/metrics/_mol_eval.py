"""GDSS's molecule evaluation in one call."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rdkit import Chem

from ..molecules._convert import (
    InvalidMoleculeError,
    MolGraph,
    graph_to_mol,
    largest_fragment,
    smiles_to_mol,
)
from ._fcd import fcd_score
from ._molecules import novelty, uniqueness
from ._nspdk import nspdk_mmd


def molecule_metrics(
    generated: Sequence[MolGraph],
    *,
    train: Iterable[str] | set[str],
    test: Sequence[str],
    fcd: bool = True,
    nspdk: bool = True,
    device: str = "cpu",
) -> dict[str, float]:
    """Validity w/o correction, uniqueness, novelty, FCD/Test and NSPDK MMD (GDSS Table 3).

    Valid graphs are reduced to their largest fragment (GDSS ``valid_mol_can_with_seg``);
    the other metrics are computed on those. GDSS instead corrects invalid graphs (removing
    bonds) and scores all of them, so its uniqueness, novelty, FCD and NSPDK include corrected
    molecules.

    Args:
        generated: generated molecular graphs.
        train: training SMILES (for novelty).
        test: test SMILES (FCD and NSPDK reference).
        fcd: compute FCD/Test (runs ChemNet).
        nspdk: compute NSPDK MMD against the test molecules.
        device: torch device for ChemNet.

    Returns:
        {"validity_wo_correction", "uniqueness", "novelty", "fcd", "nspdk"} (the last two if
        asked for).
    """
    if len(generated) == 0:
        raise ValueError("`generated` is empty")
    mols = []
    for g in generated:
        try:
            mols.append(largest_fragment(graph_to_mol(g)))
        except InvalidMoleculeError:
            continue
    out = {"validity_wo_correction": len(mols) / len(generated)}
    smiles = [Chem.MolToSmiles(m) for m in mols]
    out["uniqueness"] = uniqueness(smiles) if smiles else 0.0
    out["novelty"] = novelty(smiles, train) if smiles else 0.0
    if fcd:
        out["fcd"] = fcd_score(smiles, test, device=device)
    if nspdk:
        # GDSS scores NSPDK on molecules parsed from SMILES (aromatic bonds count as 1).
        out["nspdk"] = nspdk_mmd(
            [smiles_to_mol(s) for s in test], [smiles_to_mol(s) for s in smiles]
        )
    return out

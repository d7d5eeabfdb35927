"""SVDD-PM on GDSS molecules raises QED over unguided sampling (same seeds and masks)."""

import pytest
from rdkit.Chem import QED

from difflab.science import gdss, molecules

SMILES = ["CCO", "CC(=O)O", "c1ccccc1", "CCN", "CC(C)O", "OCC=O", "C1CCOC1", "CC#N",
          "NC(=O)CO", "CC(C)(C)O", "c1ccncc1", "OC1CC1"]  # fmt: skip


@pytest.fixture(scope="module")
def model():
    cfg = gdss.get_config(
        "qm9-quick", nhid=8, adim=8, num_layers=2, c_hid=4, c_final=2, num_heads=2,
        steps=12, batch_size=12,
    )  # fmt: skip
    data = molecules.mols_to_dense([molecules.smiles_to_graph(s) for s in SMILES], cfg.max_nodes)
    m = gdss.GDSS(cfg)
    m.atom_types = molecules.QM9_ATOMS
    m.fit(data, steps=30, progress=False, seed=0)
    return m


def test_reward_reads_molecules(model):
    g = molecules.smiles_to_graph("c1ccncc1")
    d = molecules.mols_to_dense([g], 9)
    r = gdss.MoleculeReward(molecules.QM9_ATOMS, d.mask)((d.x, d.adj))
    mol = molecules.graph_to_mol(g)
    assert r.shape == (1,) and float(r[0]) == pytest.approx(QED.qed(mol))
    empty = gdss.MoleculeReward(molecules.QM9_ATOMS, d.mask)((d.x * 0, d.adj * 0))
    assert float(empty[0]) == 0.0


def test_svdd_raises_qed(model):
    rep = gdss.svdd_compare(model, 12, n_candidates=8, seed=0, progress=False)
    assert rep.guided["mean_reward"] > rep.unguided["mean_reward"] + 0.05, rep


def test_sa_scorer_available_or_none():
    sa = gdss.sa_scorer()
    if sa is None:
        pytest.skip("RDKit Contrib sascorer not shipped in this rdkit wheel")
    assert 1.0 <= sa(molecules.smiles_to_mol("CCO")) <= 10.0
    d = molecules.mols_to_dense([molecules.smiles_to_graph(s) for s in SMILES[:4]], 9)
    qed = gdss.MoleculeReward(molecules.QM9_ATOMS, d.mask)((d.x, d.adj))
    with_sa = gdss.MoleculeReward(molecules.QM9_ATOMS, d.mask, sa_weight=0.5)((d.x, d.adj))
    assert bool((with_sa <= qed).all()) and bool((with_sa < qed).any())
    assert bool((with_sa >= qed - 0.5).all())

import json
import os
from pathlib import Path

import pytest
import torch
from rdkit import Chem, RDConfig

from difflab.science import molecules
from difflab.science.molecules import (
    QM9_ATOMS,
    ZINC250K_ATOMS,
    InvalidMoleculeError,
    InvalidSmilesError,
    MolGraph,
    canonical_smiles,
    dense_to_mols,
    graph_to_mol,
    graph_to_smiles,
    load_qm9,
    load_zinc250k,
    mol_to_nx,
    mols_to_dense,
    smiles_to_graph,
)

SHARED = Path(os.environ.get("DIFFLAB_SHARED_DATA", Path(__file__).parents[3] / "shared" / "data"))

QM9_LIKE = [
    "C",
    "N",
    "O",
    "C#N",
    "CC(=O)O",
    "c1ccccc1",
    "c1ccncc1",
    "c1cc[nH]c1",
    "OC1COC1",
    "NC(=O)C#C",
    "O=c1[nH]cco1",
    "FC(F)F",
    "CC1(C)CC1",
    "C1CC2CC12",
    "[NH3+]CC(=O)[O-]",
    "C[N+](C)(C)C",
    "N=C1OCC1",
]
ZINC_LIKE = [
    "CC(=O)Oc1ccccc1C(=O)O",
    "O=[N+]([O-])c1ccc(Cl)cc1",
    "CS(N)(=O)=O",
    "COP(=O)(OC)OC",
    "Brc1ccc(I)cc1",
    "c1ccc2[nH]ccc2c1",
    "CS(C)=O",
    "c1ccsc1",
    "C[C@H](N)C(=O)O",  # stereo is dropped by the graph
]


def plain(smiles):
    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles), isomericSmiles=False)


@pytest.mark.parametrize("smiles", QM9_LIKE)
def test_round_trip_qm9_vocabulary(smiles):
    g = smiles_to_graph(smiles, QM9_ATOMS)
    assert g.one_hot().shape == (g.num_atoms, 4)
    assert graph_to_smiles(g) == plain(smiles)


@pytest.mark.parametrize("smiles", ZINC_LIKE)
def test_round_trip_zinc_vocabulary(smiles):
    g = smiles_to_graph(smiles, ZINC250K_ATOMS)
    assert graph_to_smiles(g) == plain(smiles)


def test_round_trip_on_rdkit_nci_molecules():
    path = Path(RDConfig.RDDataDir) / "NCI" / "first_200.tpsa.csv"
    if not path.is_file():
        pytest.skip("RDKit data files not installed")
    lines = [ln.split(",")[0] for ln in path.read_text().splitlines() if not ln.startswith("#")]
    done = 0
    for smiles in lines[:120]:
        mol = Chem.MolFromSmiles(smiles)
        if mol is None or any(a.GetSymbol() not in ZINC250K_ATOMS for a in mol.GetAtoms()):
            continue
        if any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
            continue
        assert graph_to_smiles(smiles_to_graph(smiles, ZINC250K_ATOMS)) == plain(smiles), smiles
        done += 1
    assert done > 50


def test_kekulised_bond_orders_and_charges():
    g = smiles_to_graph("c1ccccc1", QM9_ATOMS)
    orders = g.bonds[torch.triu(g.bonds, 1) > 0]
    assert sorted(orders.tolist()) == [1, 1, 1, 2, 2, 2]  # Kekule, no aromatic 1.5
    assert (g.bonds.sum(-1) == 3).all()
    z = smiles_to_graph("[NH3+]CC(=O)[O-]", QM9_ATOMS)
    assert z.symbols() == ["N", "C", "C", "O", "O"]
    assert z.charges.tolist() == [1, 0, 0, 0, -1]


def test_invalid_smiles_errors_name_the_smiles():
    with pytest.raises(InvalidSmilesError, match=r"invalid SMILES 'C1CC'"):
        smiles_to_graph("C1CC")
    with pytest.raises(InvalidSmilesError, match=r"'CN\(C\)\(C\)\(C\)C'.*valence"):
        smiles_to_graph("CN(C)(C)(C)C")
    with pytest.raises(InvalidSmilesError, match="non-empty"):
        smiles_to_graph("")
    with pytest.raises(ValueError, match=r"'CCl'.*Cl, not in the vocabulary"):
        smiles_to_graph("CCl", QM9_ATOMS)
    with pytest.raises(ValueError, match="radical"):
        smiles_to_graph("[CH2]C")  # ethyl radical
    with pytest.raises(InvalidSmilesError, match="invalid SMILES 'xyz'"):
        canonical_smiles("xyz")


def graph(symbols, bonds, charges=None, types=QM9_ATOMS):
    n = len(symbols)
    b = torch.zeros(n, n, dtype=torch.int64)
    for i, j, o in bonds:
        b[i, j] = b[j, i] = o
    atoms = torch.tensor([types.index(s) for s in symbols])
    return MolGraph(atoms, b, types, None if charges is None else torch.tensor(charges))


def test_graph_to_mol_valency_checks():
    # carbon with five bonds
    bad = graph(["C"] * 6, [(0, k, 1) for k in range(1, 6)])
    with pytest.raises(InvalidMoleculeError, match=r"atom # 0 C, 5"):
        graph_to_mol(bad)
    # fluorine with two bonds
    with pytest.raises(InvalidMoleculeError, match="F"):
        graph_to_mol(graph(["C", "F", "C"], [(0, 1, 1), (1, 2, 1)]))
    with pytest.raises(InvalidMoleculeError, match="bonded to itself"):
        graph_to_mol(MolGraph(torch.tensor([0]), torch.tensor([[1]]), QM9_ATOMS))
    with pytest.raises(InvalidMoleculeError, match="order 4"):
        graph_to_mol(graph(["C", "C"], [(0, 1, 4)]))


def test_gdss_charge_rule_without_charges():
    # tetravalent N without charges becomes N+, as GDSS's construct_mol does
    quat = graph(["N", "C", "C", "C", "C"], [(0, k, 1) for k in range(1, 5)])
    assert Chem.MolToSmiles(graph_to_mol(quat)) == "C[N+](C)(C)C"
    # with explicit zero charges the same graph is invalid
    zero = graph(["N", "C", "C", "C", "C"], [(0, k, 1) for k in range(1, 5)], [0] * 5)
    with pytest.raises(InvalidMoleculeError, match="N"):
        graph_to_mol(zero)


def test_dense_round_trip_and_quantisation():
    gs = [smiles_to_graph(s, QM9_ATOMS) for s in ["CC#N", "O=CO", "c1ccccc1"]]
    d = mols_to_dense(gs, max_atoms=9)
    assert d.x.shape == (3, 9, 4) and d.adj.shape == (3, 9, 9)
    assert d.mask.sum(1).tolist() == [3, 3, 6]
    assert d.adj.max() == 3 and torch.equal(d.adj, d.adj.transpose(1, 2))
    noisy_x = d.x * 0.9 + 0.04
    noisy_adj = d.adj + 0.3 * (
        torch.rand(3, 9, 9, generator=torch.Generator().manual_seed(0)) - 0.5
    )
    noisy_adj = (noisy_adj + noisy_adj.transpose(1, 2)) / 2
    back = dense_to_mols(noisy_x, noisy_adj, QM9_ATOMS)
    # charges are not in the dense tensors; these molecules are neutral
    assert [graph_to_smiles(b) for b in back] == ["CC#N", "O=CO", "c1ccccc1"]
    with pytest.raises(ValueError, match="more than max_atoms"):
        mols_to_dense(gs, max_atoms=4)
    with pytest.raises(ValueError, match="shape"):
        dense_to_mols(d.x, d.adj, ZINC250K_ATOMS)


def test_mol_to_nx_labels_like_gdss():
    g = mol_to_nx(Chem.MolFromSmiles("c1ccccc1O"))
    assert {d["label"] for _, d in g.nodes(data=True)} == {"C", "O"}
    assert {d["label"] for *_, d in g.edges(data=True)} == {1}  # aromatic 1.5 -> 1


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return path


def test_load_qm9_our_format(tmp_path):
    rows = [(1, "C", "gdb17"), (2, "N", "gdb17"), (3, "O", "gdb17"), (5, "C#N", "geometry")]
    csv = write_csv(tmp_path / "q.csv", ["gdb_index", "smiles", "smiles_source"], rows)
    split = tmp_path / "s.json"
    split.write_text(json.dumps({"test_gdb_index": [2, 5]}))
    ds = load_qm9(csv, split)
    assert ds.test == ["N", "C#N"] and ds.train == ["C", "O"]
    assert ds.atom_types == QM9_ATOMS and ds.max_atoms == 9
    only = load_qm9(csv, split, sources={"gdb17"})
    assert only.test == ["N"] and only.train == ["C", "O"]


def test_load_qm9_gdss_format(tmp_path):
    csv = write_csv(
        tmp_path / "qm9.csv", ["", "SMILES1", "A"], [(0, "C", 1.0), (1, "N", 2.0), (2, "O", 3.0)]
    )
    split = tmp_path / "valid_idx_qm9.json"
    split.write_text(json.dumps({"valid_idxs": ["000001"]}))  # row 1 = gdb 2
    ds = load_qm9(csv, split)
    assert ds.test == ["N"] and ds.train == ["C", "O"]


def test_load_zinc250k(tmp_path):
    csv = tmp_path / "zinc250k.csv"
    csv.write_text('smiles,logP\n"CCO\n",0.1\n"c1ccccc1\n",1.2\n"CCN\n",0.3\n')
    split = tmp_path / "valid_idx_zinc250k.json"
    split.write_text("[1]")
    ds = load_zinc250k(csv, split)
    assert ds.test == ["c1ccccc1"] and ds.train == ["CCO", "CCN"]
    assert ds.atom_types == ZINC250K_ATOMS and ds.max_atoms == 38
    split.write_text("[7]")
    with pytest.raises(ValueError, match="outside"):
        load_zinc250k(csv, split)


def test_corrupt_molecule_files(tmp_path):
    csv = write_csv(tmp_path / "q.csv", ["id", "canon"], [(1, "C")])
    split = tmp_path / "s.json"
    split.write_text(json.dumps({"test_gdb_index": [1]}))
    with pytest.raises(ValueError, match="no 'smiles' or 'SMILES1' column"):
        load_qm9(csv, split)
    good = write_csv(tmp_path / "g.csv", ["gdb_index", "smiles"], [(1, "C"), ("x", "N")])
    with pytest.raises(ValueError, match="not an integer"):
        load_qm9(good, split)
    good = write_csv(tmp_path / "g.csv", ["gdb_index", "smiles"], [(1, "C")])
    split.write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_qm9(good, split)
    split.write_text(json.dumps({"idx": [1]}))
    with pytest.raises(ValueError, match="test_gdb_index"):
        load_qm9(good, split)
    with pytest.raises(FileNotFoundError):
        load_qm9(tmp_path / "none.csv", split)


def test_public_api_names_resolve():
    for name in molecules.__all__:
        assert getattr(molecules, name) is not None


@pytest.mark.slow
def test_shared_qm9_split_and_round_trip():
    root = SHARED / "qm9"
    if not (root / "qm9_gdb17.csv").is_file():
        pytest.skip("shared QM9 data not present")
    ds = load_qm9(root / "qm9_gdb17.csv", root / "gdss_test_split.json", sources={"gdb17"})
    assert len(ds.test) == 12914 and len(ds.train) + len(ds.test) == 130831
    for smiles in ds.test[:2000]:
        g = smiles_to_graph(smiles, QM9_ATOMS)
        assert g.num_atoms <= 9
        assert graph_to_smiles(g) == plain(smiles)

import math
import socket

import networkx as nx
import pytest
import torch
from rdkit import Chem

from difflab.science import metrics
from difflab.science.metrics import (
    fcd_score,
    molecule_metrics,
    novelty,
    nspdk_kernel,
    nspdk_mmd,
    uniqueness,
    valid_canonical,
    validity,
    validity_without_correction,
)
from difflab.science.molecules import QM9_ATOMS, MolGraph, smiles_to_graph


def test_validity_uniqueness_novelty_by_hand():
    gen = ["CCO", "OCC", "C1CC", None, "", "c1ccccc1", "C1=CC=CC=C1", "CN"]
    # valid: CCO, OCC (= CCO), benzene twice, CN -> 5 of 8
    assert validity(gen) == pytest.approx(5 / 8)
    assert valid_canonical(gen) == ["CCO", "CCO", "c1ccccc1", "c1ccccc1", "CN"]
    assert uniqueness(gen) == pytest.approx(3 / 5)
    # distinct valid: CCO, benzene, CN; training has ethanol written differently
    assert novelty(gen, ["OCC", "CCCC"]) == pytest.approx(2 / 3)
    assert novelty(gen, {"CCO", "c1ccccc1", "CN"}) == 0.0
    with pytest.raises(ValueError, match="no valid molecule"):
        uniqueness(["C1CC", None])
    with pytest.raises(ValueError, match="invalid SMILES 'C1CC'"):
        novelty(gen, ["C1CC"])  # training data must be valid


def test_validity_without_correction():
    ok = smiles_to_graph("CC=O", QM9_ATOMS)
    n = 6
    bonds = torch.zeros(n, n, dtype=torch.int64)
    bonds[0, 1:] = bonds[1:, 0] = 1  # carbon with five single bonds
    bad = MolGraph(torch.zeros(n, dtype=torch.int64), bonds, QM9_ATOMS)
    # tetravalent nitrogen is accepted with GDSS's +1 charge rule
    quat = MolGraph(torch.tensor([1, 0, 0, 0, 0]), bonds[:5, :5], QM9_ATOMS)
    assert validity_without_correction([ok, bad, quat, ok]) == pytest.approx(3 / 4)


def two_atom(a, b):
    g = nx.Graph()
    g.add_node(0, label=a)
    g.add_node(1, label=b)
    g.add_edge(0, 1, label=1)
    return g


def test_nspdk_by_hand():
    cc, co = two_atom("C", "C"), two_atom("C", "O")
    k = nspdk_kernel([cc, co])
    assert k[0, 0] == pytest.approx(1.0) and k[1, 1] == pytest.approx(1.0)
    # Blocks (r, d) in {0, 1}^2; a radius-r neighbourhood spans expanded distances 0..2r, so
    # at r = 1 it already holds the other atom and C-C shares nothing with C-O there.
    # r = 0 blocks of C-C: {pair CC: 2, context C: 2} -> 1/sqrt2 each (d = 0 and d = 1).
    # C-O, d = 0: {CC, C, OO, O} -> 1/2 each; d = 1: {CO: 2, O: 1, C: 1} -> 2, 1, 1 / sqrt6.
    # Shared: d = 0: CC and C; d = 1: the context C. Both vectors have 4 blocks: norm 2.
    want = (1 / math.sqrt(2) + 1 / math.sqrt(12)) / 4
    assert k[0, 1].item() == pytest.approx(want)
    assert nspdk_mmd([cc], [co]) == pytest.approx(2 - 2 * want)
    # a lone atom has degree 0: nothing in common with an atom of degree 1
    lone = nx.Graph()
    lone.add_node(0, label="C")
    assert nspdk_kernel([lone], [cc]).item() == 0.0


def test_nspdk_identical_sets_zero_and_labels_matter():
    smiles = ["CCO", "c1ccccc1", "CC(=O)O", "CN", "C#N", "OC1COC1"]
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    assert nspdk_mmd(mols, list(reversed(mols))) == pytest.approx(0.0, abs=1e-12)
    k = nspdk_kernel(mols)
    assert torch.allclose(k, k.T) and torch.allclose(k.diagonal(), torch.ones(6, dtype=k.dtype))
    assert bool((torch.linalg.eigvalsh(k) > -1e-10).all())  # positive semi-definite
    other = [Chem.MolFromSmiles(s) for s in ["CCCC", "CCCCC", "CC(C)C", "C1CCCCC1"]]
    assert nspdk_mmd(mols, other) > 0.05
    # isomorphic graphs with different node numbering agree
    g = nx.relabel_nodes(metrics._nspdk.mol_to_nx(mols[2]), {0: 10, 1: 3, 2: 7, 3: 0})
    assert nspdk_mmd([mols[2]], [g]) == pytest.approx(0.0, abs=1e-12)


def test_nspdk_unlabelled_graphs_and_missing_labels():
    a = [nx.cycle_graph(5), nx.path_graph(4)]
    assert nspdk_mmd(a, a, node_label=None, edge_label=None) == pytest.approx(0.0, abs=1e-12)
    assert nspdk_mmd(a, [nx.star_graph(4)], node_label=None, edge_label=None) > 0
    with pytest.raises(ValueError, match="no 'label' attribute"):
        nspdk_mmd(a, a)


@pytest.fixture
def no_network(monkeypatch):
    real = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access to {address!r}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: guarded(socket.socket(), a))


def test_fcd_offline(no_network):
    ref = ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "CCCl", "c1ccncc1", "OCC(O)CO", "CC#N"]
    assert fcd_score(ref, list(reversed(ref))) == pytest.approx(0.0, abs=1e-3)
    far = ["CCCCCCCC", "CCCCCCCCC", "CCCCCC(C)C", "CCCCCCCCCC", "C1CCCCCCC1", "CCCCCCCCCCC"]
    d = fcd_score(far + ["not a smiles"], ref)
    assert d > 1.0
    with pytest.raises(ValueError, match="at least 2 valid"):
        fcd_score(["C1CC", "CCO"], ref)


def test_molecule_metrics_end_to_end():
    train = ["CCO", "CC=O", "CCN", "CC(=O)O"]
    test = ["CCC", "CCCO", "OCCO", "CC(C)O", "CC#N"]
    gen = [smiles_to_graph(s, QM9_ATOMS) for s in ["CCO", "CCCO", "CCCO", "OCC=O", "C#CC"]]
    out = molecule_metrics(gen, train=train, test=test, fcd=False)
    assert out["validity_wo_correction"] == 1.0
    assert out["uniqueness"] == pytest.approx(4 / 5)
    assert out["novelty"] == pytest.approx(3 / 4)
    assert out["nspdk"] > 0 and "fcd" not in out


def test_public_api_names_resolve():
    for name in metrics.__all__:
        assert getattr(metrics, name) is not None


def test_frechet_distance_matches_closed_form():
    # commuting covariances: Tr((s1 s2)^1/2) = sum sqrt(a_i b_i)
    a, b = [1.0, 4.0, 9.0], [4.0, 1.0, 1.0]
    s1, s2 = torch.diag(torch.tensor(a)).numpy(), torch.diag(torch.tensor(b)).numpy()
    mu1, mu2 = torch.tensor([0.0, 1.0, 0.0]).numpy(), torch.tensor([1.0, 1.0, 2.0]).numpy()
    want = 1 + 4 + sum(a) + sum(b) - 2 * sum(math.sqrt(x * y) for x, y in zip(a, b, strict=True))
    assert metrics._fcd.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want)

import json
import os
import pickle
from pathlib import Path

import networkx as nx
import pytest
import torch

from difflab.science import graphs
from difflab.science.graphs import (
    community_small,
    dataset_info,
    from_dense,
    from_pyg,
    gdss_split,
    load_graph_dataset,
    load_graph_json,
    read_gdss_pickle,
    save_graph_json,
    to_dense,
    to_pyg,
    two_community_graph,
)

SHARED = Path(os.environ.get("DIFFLAB_SHARED_DATA", Path(__file__).parents[3] / "shared" / "data"))


def write(tmp_path, doc, name="g.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def test_json_loader_parses_and_splits(tmp_path):
    doc = {
        "name": "toy",
        "source": "hand-made",
        "split_note": "first 20% test",
        "graphs": [{"num_nodes": 3, "edges": [[0, 1], [1, 2]]}]
        + [{"num_nodes": k, "edges": [[i, i + 1] for i in range(k - 1)]} for k in range(2, 11)],
    }
    ds = load_graph_json(write(tmp_path, doc))
    assert ds.name == "toy" and len(ds) == 10
    assert sorted(ds.graphs[0].edges) == [(0, 1), (1, 2)]
    assert [g.number_of_nodes() for g in ds.graphs] == [3, *range(2, 11)]
    train, test = ds.split()
    assert len(test) == 2 and len(train) == 8  # int(0.2 * 10)
    assert test[0] is ds.graphs[0] and train[0] is ds.graphs[2]


def test_split_rounds_down_like_gdss():
    gs = [nx.path_graph(3)] * 587  # ENZYMES size: int(0.2 * 587) = 117 test graphs
    train, test = gdss_split(gs)
    assert (len(train), len(test)) == (470, 117)


def test_save_then_load_round_trip(tmp_path):
    gs = community_small(5, generator=torch.Generator().manual_seed(1))
    path = save_graph_json(gs, tmp_path / "cs.json", name="cs")
    back = load_graph_json(path).graphs
    for a, b in zip(gs, back, strict=True):
        assert nx.utils.graphs_equal(nx.Graph(a), b) or sorted(a.edges) == sorted(b.edges)


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"graphs": [{"num_nodes": 2, "edges": [[0, 2]]}]}, "outside its nodes"),
        ({"graphs": [{"num_nodes": 2, "edges": [[0, 0]]}]}, "self-loop"),
        ({"graphs": [{"num_nodes": -1, "edges": []}]}, "num_nodes"),
        ({"graphs": [{"num_nodes": 2, "edges": [[0]]}]}, "pair"),
        ({"graphs": [{"edges": []}]}, "'num_nodes' and 'edges'"),
        ({"name": "x"}, "'graphs' list"),
    ],
)
def test_corrupt_json_gets_clear_error(tmp_path, doc, match):
    with pytest.raises(ValueError, match=match):
        load_graph_json(write(tmp_path, doc))


def test_not_json_and_missing_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_graph_json(p)
    with pytest.raises(FileNotFoundError):
        load_graph_json(tmp_path / "absent.json")
    with pytest.raises(FileNotFoundError, match="download_graph_dataset"):
        load_graph_dataset("community-small", tmp_path)
    with pytest.raises(ValueError, match="unknown graph dataset"):
        dataset_info("cora")


def test_dataset_info_matches_gdss_configs():
    assert dataset_info("community_small").max_nodes == 20
    assert dataset_info("Community-Small").max_feat_num == 10
    assert (dataset_info("ego-small").max_nodes, dataset_info("ego-small").max_feat_num) == (18, 17)
    assert (dataset_info("grid").max_nodes, dataset_info("grid").max_feat_num) == (361, 5)
    assert (dataset_info("ENZYMES").max_nodes, dataset_info("enzymes").max_feat_num) == (125, 10)


def test_community_generator_is_seeded_and_has_two_communities():
    a = community_small(30, generator=torch.Generator().manual_seed(0))
    b = community_small(30, generator=torch.Generator().manual_seed(0))
    assert [sorted(g.edges) for g in a] == [sorted(g.edges) for g in b]
    for g in a:
        n = g.number_of_nodes()
        assert n % 2 == 0 and 12 <= n <= 20
        c = n // 2
        bridges = [(u, v) for u, v in g.edges if (u < c) != (v < c)]
        assert len(bridges) >= 1
        intra = g.number_of_edges() - len(bridges)
        assert intra <= 2 * c * (c - 1) // 2


def test_community_density_close_to_p_intra():
    gs = [two_community_graph(20, generator=torch.Generator().manual_seed(s)) for s in range(40)]
    intra = sum(sum(1 for u, v in g.edges if (u < 10) == (v < 10)) for g in gs)
    frac = intra / (40 * 2 * 45)
    assert frac == pytest.approx(0.7, abs=0.03)  # sd of the estimate is about 0.008
    bridges = sum(sum(1 for u, v in g.edges if (u < 10) != (v < 10)) for g in gs) / 40
    assert 0.5 < bridges < 2.0  # 100 pairs with probability 0.01, and at least one
    with pytest.raises(ValueError, match="at least 2"):
        two_community_graph(1)


def test_to_dense_degree_features_and_back():
    gs = [nx.path_graph(3), nx.star_graph(3), nx.complete_graph(2)]
    d = to_dense(gs, max_nodes=5, features="degree", max_feat_num=4)
    assert d.x.shape == (3, 5, 4) and d.adj.shape == (3, 5, 5) and d.mask.shape == (3, 5)
    assert d.mask.sum(1).tolist() == [3, 4, 2]
    # path 0-1-2: degrees 1, 2, 1; padding rows all zero
    assert d.x[0, :3].argmax(-1).tolist() == [1, 2, 1]
    assert d.x[0, 3:].abs().sum() == 0
    assert d.x[1, :4].argmax(-1).tolist() == [3, 1, 1, 1]
    assert torch.equal(d.x.sum(-1), d.mask.float())
    back = from_dense(d.adj, d.mask)
    for g, h in zip(gs, back, strict=True):
        assert nx.is_isomorphic(g, h) and h.number_of_nodes() == g.number_of_nodes()
    ones = to_dense(gs, 5, features="ones", max_feat_num=2)
    assert torch.equal(ones.x[..., 0], ones.mask.float())


def test_to_dense_errors_name_the_problem():
    with pytest.raises(ValueError, match="max_feat_num"):
        to_dense([nx.star_graph(5)], 6, max_feat_num=5)
    with pytest.raises(ValueError, match="more than max_nodes"):
        to_dense([nx.path_graph(6)], 5, max_feat_num=5)
    with pytest.raises(ValueError, match="unknown features"):
        to_dense([nx.path_graph(2)], 5, features="eigen")


def test_from_dense_quantises_drops_self_loops_and_isolates():
    adj = torch.tensor(
        [[0.9, 0.6, 0.1, 0.0], [0.6, 0.0, 0.0, 0.0], [0.1, 0.0, 0.0, 0.0], [0.0] * 4]
    )
    (g,) = from_dense(adj)
    assert g.number_of_nodes() == 4 and sorted(g.edges) == [(0, 1)]
    (h,) = from_dense(adj, remove_isolated=True)
    assert h.number_of_nodes() == 2 and h.number_of_edges() == 1
    (empty,) = from_dense(torch.zeros(3, 3), remove_isolated=True)
    assert empty.number_of_nodes() == 1  # GDSS keeps one node
    with pytest.raises(ValueError, match="not symmetric"):
        from_dense(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))


def test_pyg_round_trip():
    g = nx.cycle_graph(5)
    x = torch.arange(10.0).reshape(5, 2)
    data = to_pyg(g, x)
    assert data.edge_index.shape == (2, 10) and data.num_nodes == 5
    assert torch.equal(data.x, x)
    assert {tuple(e) for e in data.edge_index.T.tolist()} >= {(0, 1), (1, 0)}
    h = from_pyg(data)
    assert sorted(map(sorted, h.edges)) == sorted(map(sorted, g.edges))
    with pytest.raises(ValueError, match="rows"):
        to_pyg(g, torch.zeros(4, 2))


def test_gdss_pickle_reader_converts_graphs_and_subgraph_views(tmp_path):
    big = nx.Graph([(10, 11), (11, 12), (12, 13), (20, 21)])
    view = big.subgraph([11, 12, 13])  # GDSS's ENZYMES.pkl holds such views
    p = tmp_path / "g.pkl"
    p.write_bytes(pickle.dumps([big, view]))
    a, b = read_gdss_pickle(p)
    assert sorted(a.edges) == [(0, 1), (1, 2), (2, 3), (4, 5)]
    assert sorted(b.edges) == [(0, 1), (1, 2)]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_gdss_pickle_reader_refuses_code(tmp_path):
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps([_Evil()]))
    with pytest.raises(ValueError, match="refusing to load"):
        read_gdss_pickle(p)


def test_public_api_names_resolve():
    for name in graphs.__all__:
        assert getattr(graphs, name) is not None


@pytest.mark.slow
@pytest.mark.parametrize("name", ["community-small", "ego-small", "grid", "enzymes"])
def test_shared_gdss_graph_sets(name):
    root = SHARED / "graphs"
    if not (root / f"{dataset_info(name).file}.json").is_file():
        pytest.skip("shared GDSS graph data not present")
    info = dataset_info(name)
    ds = load_graph_dataset(name, root)
    assert len(ds) == {"community-small": 100, "ego-small": 200, "grid": 100, "enzymes": 587}[name]
    assert max(g.number_of_nodes() for g in ds.graphs) <= info.max_nodes
    d = to_dense(ds.graphs[:8], info.max_nodes, max_feat_num=info.max_feat_num)
    assert torch.equal(d.x.sum(-1), d.mask.float())

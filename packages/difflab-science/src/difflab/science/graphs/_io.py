"""Graph datasets of GDSS (community-small, ego-small, grid, ENZYMES) as JSON edge lists.

File format (one file per dataset)::

    {"name": str, "source": str, "split_note": str,
     "graphs": [{"num_nodes": n, "edges": [[u, v], ...]}, ...]}

with nodes numbered 0..n-1. GDSS's split (utils/data_loader.py): the first
``int(0.2 * len(graphs))`` graphs in file order are the test set, the rest train.

GDSS distributes these sets as pickled networkx graphs (harryjo97/GDSS: data/*.pkl).
:func:`download_graph_dataset` fetches such a pickle and converts it to JSON with
:func:`read_gdss_pickle`, an unpickler that only admits networkx graph classes and plain
containers, so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

GDSS_TEST_FRACTION = 0.2  # GDSS config/*.yaml: data.test_split
_GDSS_RAW = "https://raw.githubusercontent.com/harryjo97/GDSS/master/data/"


@dataclass(frozen=True)
class GraphDatasetInfo:
    """What GDSS uses for one dataset (config/<name>.yaml).

    Attributes:
        name: dataset name as used here (``"community-small"``...).
        file: file stem, ``<file>.json`` locally and ``<file>.pkl`` in GDSS.
        max_nodes: ``data.max_node_num``.
        max_feat_num: ``data.max_feat_num`` (width of the degree one-hot features).
        url: GDSS's pickled graph list.
    """

    name: str
    file: str
    max_nodes: int
    max_feat_num: int
    url: str


GRAPH_DATASETS = {
    info.name: info
    for info in (
        GraphDatasetInfo(
            "community-small", "community_small", 20, 10, _GDSS_RAW + "community_small.pkl"
        ),
        GraphDatasetInfo("ego-small", "ego_small", 18, 17, _GDSS_RAW + "ego_small.pkl"),
        GraphDatasetInfo("grid", "grid", 361, 5, _GDSS_RAW + "grid.pkl"),
        GraphDatasetInfo("enzymes", "ENZYMES", 125, 10, _GDSS_RAW + "ENZYMES.pkl"),
    )
}


def dataset_info(name: str) -> GraphDatasetInfo:
    """Look a dataset up by name (``community-small``, ``community_small`` and case all work)."""
    key = name.strip().lower().replace("_", "-")
    if key not in GRAPH_DATASETS:
        raise ValueError(f"unknown graph dataset {name!r}; known: {', '.join(GRAPH_DATASETS)}")
    return GRAPH_DATASETS[key]


@dataclass(frozen=True)
class GraphDataset:
    """A list of graphs with its provenance.

    Attributes:
        name: dataset name.
        graphs: graphs with nodes 0..n-1, in file order.
        source: where the graphs come from.
        split_note: how the file is meant to be split.
    """

    name: str
    graphs: list[nx.Graph] = field(repr=False)
    source: str = ""
    split_note: str = ""

    def __len__(self) -> int:
        return len(self.graphs)

    def split(
        self, test_fraction: float = GDSS_TEST_FRACTION
    ) -> tuple[list[nx.Graph], list[nx.Graph]]:
        """GDSS split: ``(train, test)``, the test set being the first ``int(f * len)`` graphs."""
        return gdss_split(self.graphs, test_fraction)


def gdss_split(
    graphs: Sequence[nx.Graph], test_fraction: float = GDSS_TEST_FRACTION
) -> tuple[list[nx.Graph], list[nx.Graph]]:
    """Split as GDSS does: the first ``int(test_fraction * len(graphs))`` are the test set.

    Returns:
        (train, test) lists.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"`test_fraction` must lie in [0, 1], got {test_fraction}")
    n_test = int(test_fraction * len(graphs))
    return list(graphs[n_test:]), list(graphs[:n_test])


def _bad(path: Path | str, what: str) -> ValueError:
    return ValueError(f"malformed graph file {str(path)!r}: {what}")


def _parse_graph(entry: Any, index: int, path: Path | str) -> nx.Graph:
    if not isinstance(entry, dict) or "num_nodes" not in entry or "edges" not in entry:
        raise _bad(path, f"graph {index} must be an object with 'num_nodes' and 'edges'")
    n = entry["num_nodes"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise _bad(path, f"graph {index} has num_nodes={n!r}; expected an integer >= 0")
    edges = entry["edges"]
    if not isinstance(edges, list):
        raise _bad(path, f"graph {index}: 'edges' must be a list of [u, v] pairs")
    g = nx.Graph()
    g.add_nodes_from(range(n))
    for e in edges:
        ok = (
            isinstance(e, list)
            and len(e) == 2
            and all(isinstance(u, int) and not isinstance(u, bool) for u in e)
        )
        if not ok:
            raise _bad(path, f"graph {index} has edge {e!r}; expected a pair [u, v] of integers")
        u, v = e
        if not (0 <= u < n and 0 <= v < n):
            raise _bad(path, f"graph {index} has edge {e!r} outside its nodes 0..{n - 1}")
        if u == v:
            raise _bad(path, f"graph {index} has a self-loop {e!r}")
        g.add_edge(u, v)
    return g


def load_graph_json(path: str | os.PathLike[str]) -> GraphDataset:
    """Read a graph dataset in the JSON edge-list format (module docstring).

    Args:
        path: the ``.json`` file.

    Returns:
        GraphDataset in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no graph file at {str(path)!r}")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _bad(path, f"not valid JSON ({err})") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("graphs"), list):
        raise _bad(path, "expected an object with a 'graphs' list")
    graphs = [_parse_graph(e, i, path) for i, e in enumerate(doc["graphs"])]
    return GraphDataset(
        name=str(doc.get("name", path.stem)),
        graphs=graphs,
        source=str(doc.get("source", "")),
        split_note=str(doc.get("split_note", "")),
    )


def save_graph_json(
    graphs: Sequence[nx.Graph],
    path: str | os.PathLike[str],
    *,
    name: str,
    source: str = "",
    split_note: str = "",
) -> Path:
    """Write graphs in the JSON edge-list format; nodes are renumbered in ``graph.nodes`` order.

    Returns:
        the path written.
    """
    entries = []
    for g in graphs:
        index = {v: i for i, v in enumerate(g.nodes)}
        edges = sorted(sorted((index[u], index[v])) for u, v in g.edges if u != v)
        entries.append({"num_nodes": g.number_of_nodes(), "edges": edges})
    doc = {"name": name, "source": source, "split_note": split_note, "graphs": entries}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def load_graph_dataset(name: str, root: str | os.PathLike[str]) -> GraphDataset:
    """Load ``<root>/<file>.json`` of a GDSS dataset (e.g. ``root=shared/data/graphs``).

    Args:
        name: ``"community-small"``, ``"ego-small"``, ``"grid"`` or ``"enzymes"``.
        root: folder holding the JSON files.
    """
    info = dataset_info(name)
    path = Path(root) / f"{info.file}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no {info.name} data at {str(path)!r}; fetch it once with "
            f"difflab.science.graphs.download_graph_dataset({info.name!r}, {str(root)!r})"
        )
    return load_graph_json(path)


# The globals a pickled list of networkx graphs (and subgraph views, as in GDSS's ENZYMES.pkl)
# needs; nothing here can run code or touch files.
_SAFE_GLOBALS = {
    ("builtins", "dict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("networkx.classes.graph", "Graph"),
    ("networkx.classes.coreviews", "AtlasView"),
    ("networkx.classes.coreviews", "AdjacencyView"),
    ("networkx.classes.coreviews", "FilterAtlas"),
    ("networkx.classes.coreviews", "FilterAdjacency"),
    ("networkx.classes.reportviews", "NodeView"),
    ("networkx.classes.reportviews", "EdgeView"),
    ("networkx.classes.filters", "show_nodes"),
    ("networkx.classes.filters", "no_filter"),
    ("networkx.classes.function", "frozen"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _GraphUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only networkx graphs are expected"
            )
        return super().find_class(module, name)


def read_gdss_pickle(path: str | os.PathLike[str]) -> list[nx.Graph]:
    """Read GDSS's pickled list of networkx graphs without running arbitrary code.

    Graphs come back as plain ``nx.Graph`` copies with nodes renumbered 0..n-1 in
    ``graph.nodes`` order (GDSS's own order in ``graphs_to_tensor``); attributes are dropped.
    """
    data = Path(path).read_bytes()
    try:
        obj = _GraphUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as err:
        raise ValueError(f"{str(path)!r} is not a pickled list of graphs: {err}") from err
    if not isinstance(obj, list) or not all(isinstance(g, nx.Graph) for g in obj):
        raise ValueError(f"{str(path)!r} does not hold a list of networkx graphs")
    out = []
    for g in obj:
        h = nx.Graph()
        index = {v: i for i, v in enumerate(g.nodes)}
        h.add_nodes_from(range(len(index)))
        h.add_edges_from((index[u], index[v]) for u, v in g.edges if u != v)
        out.append(h)
    return out


def download_graph_dataset(name: str, root: str | os.PathLike[str]) -> Path:
    """Download GDSS's copy of a dataset and store it as ``<root>/<file>.json``.

    Needs the network (GitHub); tests never call it.

    Args:
        name: ``"community-small"``, ``"ego-small"``, ``"grid"`` or ``"enzymes"``.
        root: output folder.

    Returns:
        path of the JSON file.
    """
    info = dataset_info(name)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / f"{info.file}.pkl"
        urllib.request.urlretrieve(info.url, raw)  # noqa: S310 (fixed https URL)
        graphs = read_gdss_pickle(raw)
    return save_graph_json(
        graphs,
        Path(root) / f"{info.file}.json",
        name=info.file,
        source=f"GDSS repository {info.url}, converted to edge lists",
        split_note="GDSS uses the first 20% of graphs (in this order) as the test set "
        "and the rest for training",
    )

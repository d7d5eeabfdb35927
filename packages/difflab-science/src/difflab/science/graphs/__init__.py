"""Graph data: GDSS's datasets, a seeded community-small generator and conversions.

Graphs are networkx graphs with nodes 0..n-1; models see dense padded batches
(:class:`DenseGraphs`) or PyG ``Data``.
"""

from ._convert import (
    DenseGraphs,
    degree_features,
    from_dense,
    from_pyg,
    to_adjacency,
    to_dense,
    to_pyg,
)
from ._generators import community_small, two_community_graph
from ._io import (
    GRAPH_DATASETS,
    GraphDataset,
    GraphDatasetInfo,
    dataset_info,
    download_graph_dataset,
    gdss_split,
    load_graph_dataset,
    load_graph_json,
    read_gdss_pickle,
    save_graph_json,
)

__all__ = [
    "GRAPH_DATASETS",
    "DenseGraphs",
    "GraphDataset",
    "GraphDatasetInfo",
    "community_small",
    "dataset_info",
    "degree_features",
    "download_graph_dataset",
    "from_dense",
    "from_pyg",
    "gdss_split",
    "load_graph_dataset",
    "load_graph_json",
    "read_gdss_pickle",
    "save_graph_json",
    "to_adjacency",
    "to_dense",
    "to_pyg",
    "two_community_graph",
]

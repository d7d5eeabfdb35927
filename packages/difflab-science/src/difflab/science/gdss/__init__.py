"""GDSS: score-based graph generation with a system of SDEs (Jo et al. 2022, arXiv:2202.02514).

>>> from difflab.science import gdss
>>> model = gdss.GDSS.from_config("community-small-quick")
>>> sorted(gdss.PRESETS)[:2]
['community-small', 'community-small-quick']
"""

from .config import PRESETS, SAMPLERS, GDSSConfig, get_config
from .model import (
    DenseGCN,
    GDSSNet,
    GraphAttention,
    NetConfig,
    ScoreNetworkA,
    ScoreNetworkX,
    adjacency_powers,
    gcn_norm,
)
from .pipeline import (
    GDSS,
    GDSSData,
    GDSSSamples,
    MaskedAdjacency,
    MaskedNodes,
    dense_graphs,
    evaluate,
    load_data,
    make_processes,
    make_step_rule,
    prediction_kinds,
)
from .svdd import MoleculeReward, SVDDReport, sa_scorer, svdd_compare, svdd_sample

__all__ = [
    "GDSS",
    "PRESETS",
    "SAMPLERS",
    "DenseGCN",
    "GDSSConfig",
    "GDSSData",
    "GDSSNet",
    "GDSSSamples",
    "GraphAttention",
    "MaskedAdjacency",
    "MaskedNodes",
    "MoleculeReward",
    "NetConfig",
    "SVDDReport",
    "ScoreNetworkA",
    "ScoreNetworkX",
    "adjacency_powers",
    "dense_graphs",
    "evaluate",
    "gcn_norm",
    "get_config",
    "load_data",
    "make_processes",
    "make_step_rule",
    "prediction_kinds",
    "sa_scorer",
    "svdd_compare",
    "svdd_sample",
]

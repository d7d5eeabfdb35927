"""GDSS configurations: one frozen dataclass, presets named after the paper's configs.

Numbers come from the paper's code (harryjo97/GDSS: config/<name>.yaml and
config/sample_<name>.yaml) and Table 6 of Jo et al. 2022 (arXiv:2202.02514). GDSS's VE
``beta_min``/``beta_max`` are sigma_min/sigma_max. Each preset has a ``-quick`` variant
(small networks, few epochs and steps) that trains and samples on 2 CPU cores in minutes.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, replace
from typing import Any

SDE_KINDS = ("VP", "VE")
SAMPLERS = ("euler", "reverse", "s4")


@dataclass(frozen=True, kw_only=True)
class GDSSConfig:
    """Everything that defines a GDSS run.

    Attributes:
        name: preset name.
        dataset: ``community-small``, ``ego-small``, ``enzymes``, ``qm9`` or ``zinc250k``.
        max_nodes: N, padded graph size (``data.max_node_num``).
        max_feat_num: F, node feature width (degree one-hot for graphs, atom types for
            molecules).
        sde_x, sde_adj: ``"VP"`` or ``"VE"`` for X and A.
        x_min, x_max, adj_min, adj_max: VP (beta_min, beta_max) or VE (sigma_min, sigma_max).
        depth, nhid: ScoreNetworkX's GCN layers and width.
        adim, num_layers, num_linears, c_init, c_hid, c_final, num_heads: ScoreNetworkA.
        batch_size, epochs, lr, lr_decay, weight_decay, grad_clip, ema: training
            (Adam, learning rate times ``lr_decay`` per epoch, EMA decay).
        t_eps: smallest training time (``train.eps``).
        sampler: predictor ``"euler"`` (Euler-Maruyama), ``"reverse"`` (reverse diffusion)
            or ``"s4"`` (GDSS's S4 solver).
        corrector: add a Langevin corrector (PC sampling; ignored by S4, which has its own).
        snr, scale_eps: corrector signal-to-noise ratio and noise scale.
        steps: sampling steps (``num_scales``); sample_eps: last time of the grid.
        use_ema: sample with the EMA weights.
        num_samples: graphs generated for evaluation (None: as many as test graphs).
        train_limit: use only the first this many training graphs (quick presets).
    """

    name: str
    dataset: str
    max_nodes: int
    max_feat_num: int
    sde_x: str = "VP"
    x_min: float = 0.1
    x_max: float = 1.0
    sde_adj: str = "VP"
    adj_min: float = 0.1
    adj_max: float = 1.0
    depth: int = 2
    nhid: int = 32
    adim: int = 32
    num_layers: int = 5
    num_linears: int = 2
    c_init: int = 2
    c_hid: int = 8
    c_final: int = 4
    num_heads: int = 4
    batch_size: int = 128
    epochs: int = 5000
    lr: float = 1e-2
    lr_decay: float = 0.999
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    ema: float = 0.999
    t_eps: float = 1e-5
    sampler: str = "euler"
    corrector: bool = True
    snr: float = 0.05
    scale_eps: float = 0.7
    steps: int = 1000
    sample_eps: float = 1e-4
    use_ema: bool = False
    num_samples: int | None = None
    train_limit: int | None = None
    seed: int = 42

    def __post_init__(self) -> None:
        for f in ("sde_x", "sde_adj"):
            if getattr(self, f) not in SDE_KINDS:
                raise ValueError(f"`{f}` must be one of {SDE_KINDS}, got {getattr(self, f)!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"`sampler` must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.steps < 1 or self.epochs < 0 or self.batch_size < 1:
            raise ValueError("`steps` and `batch_size` must be >= 1 and `epochs` >= 0")

    @property
    def is_molecule(self) -> bool:
        """True for QM9 / ZINC250k."""
        return self.dataset in ("qm9", "zinc250k")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (saved beside the checkpoints)."""
        return asdict(self)


_GRAPH: dict[str, Any] = {"sampler": "euler", "corrector": True, "snr": 0.05, "scale_eps": 0.7}

_PAPER: dict[str, GDSSConfig] = {
    # config/community_small.yaml
    "community-small": GDSSConfig(
        name="community-small", dataset="community-small", max_nodes=20, max_feat_num=10,
        depth=3, nhid=32, adim=32, num_layers=5, num_linears=2, c_init=2, c_hid=8, c_final=4,
        batch_size=128, epochs=5000, lr=1e-2, seed=11, **_GRAPH,
    ),
    # config/ego_small.yaml: Euler predictor without corrector
    "ego-small": GDSSConfig(
        name="ego-small", dataset="ego-small", max_nodes=18, max_feat_num=17,
        depth=2, nhid=32, adim=32, num_layers=5, num_linears=2, c_init=2, c_hid=8, c_final=4,
        batch_size=128, epochs=5000, lr=1e-2, sampler="euler", corrector=False, snr=0.0,
        scale_eps=0.0, seed=12,
    ),
    # config/enzymes.yaml: VP for X, VE (sigma 0.2..1) for A, S4 solver, EMA weights
    "enzymes": GDSSConfig(
        name="enzymes", dataset="enzymes", max_nodes=125, max_feat_num=10,
        sde_adj="VE", adj_min=0.2, adj_max=1.0,
        depth=5, nhid=32, adim=32, num_layers=7, num_linears=2, c_init=2, c_hid=8, c_final=4,
        batch_size=64, epochs=5000, lr=1e-2, sampler="s4", corrector=False, snr=0.15,
        scale_eps=0.7, use_ema=True, seed=12,
    ),
    # config/qm9.yaml + sample_qm9.yaml: VE/VE (sigma 0.1..1), reverse diffusion + Langevin
    "qm9": GDSSConfig(
        name="qm9", dataset="qm9", max_nodes=9, max_feat_num=4,
        sde_x="VE", x_min=0.1, x_max=1.0, sde_adj="VE", adj_min=0.1, adj_max=1.0,
        depth=2, nhid=16, adim=16, num_layers=3, num_linears=3, c_init=2, c_hid=8, c_final=4,
        batch_size=1024, epochs=300, lr=5e-3, sampler="reverse", corrector=True, snr=0.2,
        scale_eps=0.7, num_samples=10000, seed=42,
    ),
    # config/zinc250k.yaml + sample_zinc250k.yaml: VP for X, VE (sigma 0.2..1) for A
    "zinc250k": GDSSConfig(
        name="zinc250k", dataset="zinc250k", max_nodes=38, max_feat_num=9,
        sde_adj="VE", adj_min=0.2, adj_max=1.0,
        depth=2, nhid=16, adim=16, num_layers=6, num_linears=3, c_init=2, c_hid=8, c_final=4,
        batch_size=1024, epochs=500, lr=5e-3, sampler="reverse", corrector=True, snr=0.2,
        scale_eps=0.9, num_samples=10000, seed=42,
    ),
}  # fmt: skip

# Quick variants: same SDEs and samplers, smaller nets, few epochs and steps (2 CPU cores).
_QUICK: dict[str, dict[str, Any]] = {
    "community-small": {"epochs": 300, "steps": 200, "nhid": 16, "adim": 16, "num_layers": 3},
    "ego-small": {"epochs": 200, "steps": 200, "nhid": 16, "adim": 16, "num_layers": 3},
    "enzymes": {
        "epochs": 5, "steps": 100, "nhid": 16, "adim": 16, "num_layers": 3, "depth": 2,
        "train_limit": 64, "batch_size": 32, "num_samples": 16,
    },
    "qm9": {
        "epochs": 10, "steps": 200, "batch_size": 256, "train_limit": 4096, "num_samples": 256,
    },
    "zinc250k": {
        "epochs": 2, "steps": 100, "batch_size": 64, "train_limit": 512, "num_samples": 32,
        "num_layers": 3,
    },
}  # fmt: skip

PRESETS: dict[str, GDSSConfig] = dict(_PAPER)
for _name, _over in _QUICK.items():
    PRESETS[f"{_name}-quick"] = replace(_PAPER[_name], name=f"{_name}-quick", **_over)


def get_config(name: str | GDSSConfig, **overrides: Any) -> GDSSConfig:
    """A preset by name (``community_small`` and case also work), with field overrides."""
    if isinstance(name, GDSSConfig):
        return replace(name, **overrides) if overrides else name
    key = name.strip().lower().replace("_", "-")
    if key not in PRESETS:
        close = difflib.get_close_matches(key, PRESETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown GDSS preset {name!r}{hint} known: {', '.join(PRESETS)}")
    return replace(PRESETS[key], **overrides) if overrides else PRESETS[key]

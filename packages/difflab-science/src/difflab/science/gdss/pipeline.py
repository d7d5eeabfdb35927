"""GDSS wired from diffcore parts: product process, objective, fit loop, samplers, evaluation.

The state is the tuple ``(X, A)``; X diffuses under its own VP/VE process with a
:class:`~diffcore.processes.NodeMask`, A under another with
:class:`~diffcore.processes.SymmetricAdjacency` (Jo et al. 2022, arXiv:2202.02514, eq. 3-5).
Training is GDSS's denoising score matching (their losses.py: ``|score * std + z|^2`` per
leaf, i.e. the eps-space loss, which is diffcore's ``weighting="snr"`` for both an eps- and a
score-predicting leaf), run by :func:`diffcore.train.fit`. Sampling uses diffcore's step rules
(Euler-Maruyama or reverse diffusion with a Langevin corrector, or S4) through
:func:`diffcore.sample`; the adjacency is quantised at 0.5 at the end (molecules: bond orders
rounded at 0.5 / 1.5 / 2.5 and decoded with valency rules).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import torch
from torch import Tensor

import diffcore
from diffcore.objectives import DenoisingScoreMatching, UniformTime
from diffcore.predictions import Denoiser
from diffcore.processes import VE, LinearVP, NodeMask, SymmetricAdjacency
from diffcore.samplers import (
    S4,
    EulerMaruyama,
    Langevin,
    PredictorCorrector,
    ReverseDiffusion,
    StepRule,
    uniform_t,
)
from diffcore.train import EMA, FitResult, fit, from_pretrained, save_pretrained

from .. import graphs as G
from .. import metrics as M
from .. import molecules as mol
from .config import GDSSConfig, get_config
from .model import GDSSNet, NetConfig, _fit_mask

__all__ = [
    "GDSS",
    "GDSSData",
    "GDSSSamples",
    "MaskedAdjacency",
    "MaskedNodes",
    "dense_graphs",
    "evaluate",
    "load_data",
    "make_processes",
    "make_step_rule",
    "prediction_kinds",
]


# ---- processes ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class MaskedNodes(NodeMask):
    """:class:`NodeMask` whose (B, N) mask also serves batches of k*B repeated states (SVDD)."""

    def project(self, x: Tensor) -> Tensor:  # noqa: D102
        return NodeMask(_fit_mask(self.node_mask, x.shape[0])).project(x)


@dataclass(frozen=True, eq=False)
class MaskedAdjacency(SymmetricAdjacency):
    """:class:`SymmetricAdjacency` whose mask also serves batches of k*B repeated states."""

    def project(self, x: Tensor) -> Tensor:  # noqa: D102
        return SymmetricAdjacency(_fit_mask(self.node_mask, x.shape[0])).project(x)

    def project_noise(self, z: Tensor) -> Tensor:  # noqa: D102
        return SymmetricAdjacency(_fit_mask(self.node_mask, z.shape[0])).project_noise(z)


def _leaf_process(kind: str, lo: float, hi: float) -> LinearVP | VE:
    return LinearVP(beta_min=lo, beta_max=hi) if kind == "VP" else VE(sigma_min=lo, sigma_max=hi)


def make_processes(config: GDSSConfig, node_mask: Tensor | None = None) -> tuple[Any, Any]:
    """The product process ``(process_X, process_A)`` with node-mask constraints.

    Args:
        config: the run's config (SDE kinds and ranges).
        node_mask: (B, N) bool mask of real nodes (None: unconstrained masks).
    """
    px = _leaf_process(config.sde_x, config.x_min, config.x_max)
    pa = _leaf_process(config.sde_adj, config.adj_min, config.adj_max)
    cx = MaskedNodes(node_mask) if node_mask is not None else None
    return (
        dataclasses.replace(px, constraint=cx),
        dataclasses.replace(pa, constraint=MaskedAdjacency(node_mask)),
    )


def prediction_kinds(config: GDSSConfig) -> tuple[str, str]:
    """What each network outputs: ``"eps"`` under VP, ``"score"`` under VE (GDSS losses.py)."""
    return tuple("eps" if k == "VP" else "score" for k in (config.sde_x, config.sde_adj))  # type: ignore[return-value]


def make_step_rule(
    config: GDSSConfig,
    sampler: str | None = None,
    *,
    snr: float | None = None,
    scale_eps: float | None = None,
    corrector: bool | None = None,
) -> StepRule:
    """The diffcore step rule of a config (``sampler`` overrides its predictor)."""
    name = (sampler or config.sampler).lower()
    snr = config.snr if snr is None else snr
    seps = config.scale_eps if scale_eps is None else scale_eps
    corr = config.corrector if corrector is None else corrector
    if name == "s4":
        return S4(snr=snr, scale_eps=seps)
    if name in ("euler", "em", "euler-maruyama"):
        pred: StepRule = EulerMaruyama()
    elif name in ("reverse", "reverse-diffusion"):
        pred = ReverseDiffusion()
    else:
        raise ValueError(f"unknown sampler {name!r}; expected 'euler', 'reverse' or 's4'")
    if corr and snr > 0:
        return PredictorCorrector(predictor=pred, corrector=Langevin(snr=snr, scale_eps=seps))
    return pred


# ---- data --------------------------------------------------------------------------------
@dataclass
class GDSSData:
    """Train/test data of one dataset.

    Attributes:
        train: dense training batch (x (B, N, F), adj (B, N, N), mask (B, N)).
        test_graphs: networkx test graphs (graph datasets) or None.
        train_smiles, test_smiles: molecule datasets' SMILES (None for graphs).
        atom_types: molecule vocabulary (None for graphs).
    """

    train: G.DenseGraphs
    test_graphs: list[nx.Graph] | None = None
    train_smiles: list[str] | None = None
    test_smiles: list[str] | None = None
    atom_types: tuple[str, ...] | None = None


BUILTIN_GRAPHS = 100  # size of GDSS's community-small set


def load_data(
    config: GDSSConfig, data_dir: str | os.PathLike[str] | None = None, *, seed: int = 0
) -> GDSSData:
    """Load a config's dataset, split as GDSS does.

    Args:
        config: the run's config.
        data_dir: graphs: folder with ``<name>.json`` (e.g. ``shared/data/graphs``); QM9: folder
            with ``qm9_gdb17.csv`` and ``gdss_test_split.json``. None for community-small
            builds the set with the seeded generator (offline).
        seed: seed of the built-in generated community-small set.
    """
    limit = config.train_limit
    if config.is_molecule:
        if data_dir is None:
            raise ValueError(f"{config.dataset} needs `data_dir` (no built-in molecule set)")
        root = Path(data_dir)
        if config.dataset == "qm9":
            ds = mol.load_qm9(
                root / "qm9_gdb17.csv", root / "gdss_test_split.json", sources={"gdb17"}
            )
        else:
            ds = mol.load_zinc250k(root / "zinc250k.csv", root / "valid_idx_zinc250k.json")
        train_smiles = ds.train if limit is None else ds.train[:limit]
        graphs_ = [mol.smiles_to_graph(s, ds.atom_types) for s in train_smiles]
        dense = mol.mols_to_dense(graphs_, config.max_nodes)
        return GDSSData(dense, None, list(ds.train), list(ds.test), tuple(ds.atom_types))
    if data_dir is None:
        if config.dataset != "community-small":
            raise ValueError(f"{config.dataset} needs `data_dir`; only community-small is built in")
        gen = torch.Generator().manual_seed(seed)
        all_graphs = G.community_small(BUILTIN_GRAPHS, generator=gen)
    else:
        all_graphs = G.load_graph_dataset(config.dataset, data_dir).graphs
    train, test = G.gdss_split(all_graphs)
    if limit is not None:
        train = train[:limit]
    return GDSSData(dense_graphs(train, config), test)


def dense_graphs(graphs: list[nx.Graph], config: GDSSConfig) -> G.DenseGraphs:
    """GDSS's dense batch with one-hot degree features (``init: deg``).

    Degrees above ``max_feat_num - 1`` (possible in freshly generated community-small graphs,
    never in GDSS's files) share the last class.
    """
    d = G.to_dense(graphs, config.max_nodes, features="zeros", max_feat_num=config.max_feat_num)
    deg = d.adj.sum(-1).round().long().clamp(max=config.max_feat_num - 1)
    x = torch.nn.functional.one_hot(deg, config.max_feat_num).float() * d.mask[..., None]
    return G.DenseGraphs(x=x, adj=d.adj, mask=d.mask)


# ---- the model ---------------------------------------------------------------------------
@dataclass
class GDSSSamples:
    """Generated tensors.

    Attributes:
        x: (B, N, F) node features (continuous).
        adj: (B, N, N) adjacency (continuous, symmetric).
        mask: (B, N) bool node mask the sampler used.
        seconds: wall time of sampling.
        nfe: network evaluations.
    """

    x: Tensor
    adj: Tensor
    mask: Tensor
    seconds: float = 0.0
    nfe: int | None = None

    def graphs(self, *, remove_isolated: bool = True) -> list[nx.Graph]:
        """Adjacency quantised at 0.5 (GDSS ``quantize``), isolated nodes dropped (as GDSS)."""
        return G.from_dense(self.adj, self.mask, threshold=0.5, remove_isolated=remove_isolated)

    def molecules(self, atom_types: tuple[str, ...]) -> list[mol.MolGraph]:
        """Molecular graphs: atom types by arg-max, bond orders rounded (GDSS quantize_mol)."""
        return mol.dense_to_mols(self.x, self.adj, atom_types, self.mask)


def _net_config(config: GDSSConfig) -> NetConfig:
    fields = {f.name for f in dataclasses.fields(NetConfig)}
    return NetConfig(**{k: v for k, v in config.to_dict().items() if k in fields})


class GDSS:
    """A GDSS model: config, networks (and EMA weights), train / sample / save / load.

    >>> model = GDSS.from_config("community-small-quick")
    >>> model.config.sde_x, model.config.sde_adj
    ('VP', 'VP')
    """

    def __init__(self, config: GDSSConfig, net: GDSSNet | None = None) -> None:
        self.config = config
        self.net = net if net is not None else GDSSNet(_net_config(config))
        self.ema_net: GDSSNet | None = None
        self.atom_types: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, name: str | GDSSConfig, **overrides: Any) -> GDSS:
        """A fresh (untrained) model from a preset name or config."""
        return cls(get_config(name, **overrides))

    # ---- training ------------------------------------------------------------------------
    def loss(self, net: Any, batch: Any, generator: torch.Generator | None = None) -> Tensor:
        """GDSS's loss of one batch ``(x, adj, mask)``: DSM on X plus DSM on A."""
        x, adj, mask = batch
        mask = mask.bool()
        procs = make_processes(self.config, mask)
        obj = DenoisingScoreMatching(
            procs,
            prediction=prediction_kinds(self.config),
            weighting="snr",
            time_sampler=UniformTime(t_eps=self.config.t_eps),
        )
        n = mask.shape[1]
        m = mask.to(x.dtype)
        pair = m[:, :, None] * m[:, None, :] * (1 - torch.eye(n, dtype=x.dtype, device=x.device))
        return obj.loss(
            net, (x, adj), generator=generator, mask=(m[..., None], pair), node_mask=mask
        )

    def fit(
        self,
        data: G.DenseGraphs,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        seed: int = 0,
        progress: bool = True,
        checkpoint_every: int | None = None,
        device: str | torch.device | None = None,
    ) -> FitResult:
        """Train on a dense batch with :func:`diffcore.train.fit` (Adam, EMA, safetensors).

        Learning rate decays by ``lr_decay`` per epoch and gradients are clipped at
        ``grad_clip`` (GDSS trainer.py). The node-count histogram of ``data`` is stored for
        sampling.

        Args:
            data: x (B, N, F), adj (B, N, N), mask (B, N).
            epochs: passes over the data (default ``config.epochs``); ``steps`` overrides.
            steps: optimizer steps (overrides ``epochs``).
            out_dir: checkpoints and ``metrics.jsonl`` go here (None: nothing written).
            seed: fixes data order, noise and initial RNG of the loop.
            progress: show a progress bar.
            checkpoint_every: checkpoint interval in steps (None: only at the end).
            device: training device (default CPU).
        """
        c = self.config
        if data.x.shape[1:] != (c.max_nodes, c.max_feat_num):
            raise ValueError(
                f"data x must have shape (B, {c.max_nodes}, {c.max_feat_num}) for {c.name}, "
                f"got {tuple(data.x.shape)}"
            )
        dev = torch.device(device) if device is not None else torch.device("cpu")
        self.net.to(dev)
        counts = torch.bincount(data.mask.sum(1).long(), minlength=c.max_nodes + 1)
        self.net.node_counts.copy_(counts.to(self.net.node_counts))
        bs = min(c.batch_size, len(data))
        per_epoch = max(1, len(data) // bs)
        if steps is None:
            steps = max(1, (c.epochs if epochs is None else epochs) * per_epoch)
        opt = torch.optim.Adam(self.net.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        ema = EMA(self.net, decay=c.ema)
        result = fit(
            self.net,
            self.loss,
            (data.x, data.adj, data.mask),
            steps=steps,
            optimizer=opt,
            batch_size=bs,
            lr_schedule=lambda s: c.lr_decay ** (s // per_epoch),
            grad_clip=c.grad_clip,
            ema=ema,
            seed=seed,
            device=dev,
            out_dir=out_dir,
            checkpoint_every=checkpoint_every,
            progress=progress,
            config=c.to_dict(),
        )
        self.ema_net = GDSSNet(self.net.config).to(dev)
        self.ema_net.load_state_dict(self.net.state_dict())
        ema.copy_to(self.ema_net)
        self.net.eval()
        self.ema_net.eval()
        return result

    # ---- sampling ------------------------------------------------------------------------
    def sampling_net(self, use_ema: bool | None = None) -> GDSSNet:
        """The network used for sampling (EMA weights when configured and available)."""
        use = self.config.use_ema if use_ema is None else use_ema
        return self.ema_net if use and self.ema_net is not None else self.net

    def node_masks(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """(n, N) bool masks with sizes drawn from the training histogram (GDSS init_flags)."""
        counts = self.net.node_counts.detach().to("cpu", torch.float64)
        if counts.sum() <= 0:
            counts = torch.zeros_like(counts)
            counts[-1] = 1.0
        sizes = torch.multinomial(counts, n, replacement=True, generator=generator)
        return torch.arange(self.config.max_nodes)[None, :] < sizes[:, None]

    def denoiser(self, mask: Tensor, *, use_ema: bool | None = None) -> Denoiser:
        """A diffcore Denoiser of the networks for node masks ``mask`` (B, N)."""
        return Denoiser(
            self.sampling_net(use_ema),
            prediction_kinds(self.config),
            make_processes(self.config, mask),
            node_mask=mask,
        )

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        sampler: str | StepRule | None = None,
        steps: int | None = None,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: bool = True,
        use_ema: bool | None = None,
        dtype: torch.dtype | None = None,
    ) -> GDSSSamples:
        """Generate ``n`` graphs with a diffcore step rule.

        Args:
            n: number of graphs.
            sampler: ``"euler"``, ``"reverse"``, ``"s4"`` (with the config's snr/scale_eps and
                corrector), or any diffcore :class:`StepRule` (e.g. ``diffcore.guidance.SVDD``).
            steps: time steps (default ``config.steps``) on a uniform grid from 1 to
                ``config.sample_eps``.
            mask: (n, N) node masks (default: drawn from the training size histogram).
            generator: the only source of randomness.
            progress: show a progress bar.
            use_ema: sample with the EMA weights (default ``config.use_ema``).
            dtype: dtype of the state (default: the network's); a different one converts the
                network in place.
        """
        c = self.config
        net = self.sampling_net(use_ema)
        dev = next(net.parameters()).device
        if mask is None:
            mask = self.node_masks(n, generator=generator)
        if mask.shape != (n, c.max_nodes):
            raise ValueError(
                f"`mask` must have shape ({n}, {c.max_nodes}), got {tuple(mask.shape)}"
            )
        mask = mask.to(dev).bool()
        rule = sampler if isinstance(sampler, StepRule) else make_step_rule(c, sampler)
        model = self.denoiser(mask, use_ema=use_ema)
        if dtype is None:
            dtype = next(net.parameters()).dtype
        elif dtype != next(net.parameters()).dtype:
            net.to(dtype)
        procs = model.process
        like = (
            torch.zeros(n, c.max_nodes, c.max_feat_num, dtype=dtype, device=dev),
            torch.zeros(n, c.max_nodes, c.max_nodes, dtype=dtype, device=dev),
        )
        x0 = tuple(
            p.project(p.prior_sample(z, generator=generator))
            for p, z in zip(procs, like, strict=True)
        )
        grid = uniform_t(procs[0], steps or c.steps, t_end=c.sample_eps, device=dev)
        t0 = time.perf_counter()
        out = diffcore.sample(model, x0, grid, rule, generator=generator, progress=progress)
        seconds = time.perf_counter() - t0
        x, adj = out.x
        return GDSSSamples(x=x, adj=adj, mask=mask, seconds=seconds, nfe=out.nfe)

    # ---- persistence ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``net/`` and ``ema/`` (safetensors + JSON) and ``gdss.json`` under ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_pretrained(self.net, path / "net")
        if self.ema_net is not None:
            save_pretrained(self.ema_net, path / "ema")
        meta = {"config": self.config.to_dict(), "atom_types": self.atom_types}
        (path / "gdss.json").write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str | None = None) -> GDSS:
        """Load a model written by :meth:`save` (no pickle)."""
        path = Path(path)
        meta_path = path / "gdss.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"no GDSS model at {str(path)!r} (missing gdss.json)")
        meta = json.loads(meta_path.read_text())
        cfg = GDSSConfig(**meta["config"])
        model = cls(cfg, from_pretrained(GDSSNet, path / "net", device=device))
        if (path / "ema").is_dir():
            model.ema_net = from_pretrained(GDSSNet, path / "ema", device=device)
        model.atom_types = tuple(meta["atom_types"]) if meta.get("atom_types") else None
        return model


# ---- evaluation --------------------------------------------------------------------------
GRAPH_METHODS = ("degree", "cluster", "orbit", "spectral")


def evaluate(
    generated: list[nx.Graph] | list[mol.MolGraph],
    *,
    reference: list[nx.Graph] | str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    train_smiles: list[str] | None = None,
    test_smiles: list[str] | None = None,
    methods: tuple[str, ...] = GRAPH_METHODS,
    fcd: bool = True,
    nspdk: bool = True,
) -> dict[str, float]:
    """GDSS's metrics: graph MMDs vs ``reference``, or molecule metrics vs train/test SMILES.

    Args:
        generated: networkx graphs or molecular graphs.
        reference: test graphs, or a preset / dataset name whose GDSS test split is loaded
            from ``data_dir`` (community-small without ``data_dir``: the built-in set).
        data_dir: where a named reference lives.
        train_smiles: molecules: training SMILES (novelty).
        test_smiles: molecules: test SMILES (FCD and NSPDK reference).
        methods: graph MMDs to compute.
        fcd: molecules: compute FCD.
        nspdk: molecules: compute NSPDK MMD.

    Returns:
        {metric: value}.
    """
    if len(generated) == 0:
        raise ValueError("`generated` is empty")
    if isinstance(generated[0], mol.MolGraph):
        if train_smiles is None or test_smiles is None:
            raise ValueError("molecule evaluation needs `train_smiles` and `test_smiles`")
        return M.molecule_metrics(
            generated,  # type: ignore[arg-type,unused-ignore]
            train=set(train_smiles),
            test=test_smiles,
            fcd=fcd,
            nspdk=nspdk,
        )
    if reference is None:
        raise ValueError("graph evaluation needs `reference` test graphs")
    if isinstance(reference, str):
        reference = load_data(get_config(reference), data_dir).test_graphs or []
    out = M.graph_mmds(reference, generated, methods=methods)
    return {k: float(v) for k, v in out.items()}

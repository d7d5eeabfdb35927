"""Train and evaluate an LPINN against the Eulerian PINN baseline with the same budget.

Both networks see the same collocation points, the same widths and depths (per branch for the
LPINN) and the same optimiser schedule: Adam, then L-BFGS with a strong-Wolfe line search
(`torch.optim.LBFGS`), as in Krishnapriyan et al. 2021 (arXiv:2109.01050) whose PINNs are trained
with L-BFGS, and Mojgani et al. 2022 (arXiv:2205.02902). Errors are relative L2 against the
exact solution on a uniform ``(t, x)`` grid. LPINN predictions live on particles, so they are
interpolated (periodically, linearly) from a finer label grid to the Eulerian grid; the error at
the particles themselves (``u(xi, t)`` against ``u_exact(x(xi, t), t)``) is reported too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from .model import EulerianPINN, LagrangianPINN
from .problems import Problem, make_problem
from .residuals import (
    CollocationPoints,
    LossWeights,
    ResidualForm,
    eulerian_loss,
    lagrangian_loss,
    sample_collocation,
)

__all__ = [
    "PRESETS",
    "Comparison",
    "Evaluation",
    "LPINNConfig",
    "TrainResult",
    "compare",
    "evaluate_lpinn",
    "evaluate_pinn",
    "get_config",
    "plot_comparison",
    "sweep_beta",
    "train_lpinn",
    "train_pinn",
    "write_metrics",
]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True, kw_only=True)
class LPINNConfig:
    """Settings of an LPINN-vs-PINN run (both models get the same budget).

    Attributes:
        equation: ``"convection"`` or ``"burgers"``.
        beta: convection speed (convection only).
        nu: diffusivity; ``None`` gives 0 for convection and ``0.01/pi`` for Burgers.
        hidden: width of every hidden layer (each LPINN branch and the PINN).
        depth: hidden layers.
        harmonics: Fourier harmonics of the LPINN's periodic embedding.
        n_residual: interior collocation points.
        n_initial: initial-condition points.
        n_boundary: boundary times of the PINN's periodic condition.
        adam_steps: Adam iterations.
        adam_lr: Adam learning rate.
        lbfgs_steps: L-BFGS iterations (``max_iter``; function evaluations <= 1.25x).
        weights: loss weights.
        residual_form: LPINN solution residual, ``"chain"`` (``du/dt - nu u_xx``) or
            ``"polynomial"`` (times ``x_xi^3``, division-free; see `lagrangian_residuals`).
        seed: seeds the collocation points and the network initialisation.
        dtype: ``"float32"`` or ``"float64"``.
        n_x: evaluation grid points in x.
        n_t: evaluation grid points in t.
    """

    equation: Literal["convection", "burgers"] = "convection"
    beta: float = 30.0
    nu: float | None = None
    hidden: int = 50
    depth: int = 4
    harmonics: int = 1
    n_residual: int = 2000
    n_initial: int = 256
    n_boundary: int = 256
    adam_steps: int = 1000
    adam_lr: float = 1e-3
    lbfgs_steps: int = 1000
    weights: LossWeights = field(default_factory=LossWeights)
    residual_form: ResidualForm = "chain"
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"
    n_x: int = 256
    n_t: int = 101

    def __post_init__(self) -> None:
        if self.equation not in ("convection", "burgers"):
            raise ValueError(f"unknown equation {self.equation!r}; known: convection, burgers.")
        if self.dtype not in _DTYPES:
            raise ValueError(f"`dtype` must be one of {list(_DTYPES)}, got {self.dtype!r}.")
        for name in ("adam_steps", "lbfgs_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}.")

    def problem(self) -> Problem:
        """The PDE this config describes."""
        return make_problem(self.equation, beta=self.beta, nu=self.nu)


# "-quick": tiny networks and budget, a smoke run in seconds
_QUICK: dict[str, Any] = dict(
    hidden=20,
    depth=2,
    n_residual=256,
    n_initial=64,
    n_boundary=32,
    adam_steps=60,
    lbfgs_steps=40,
    n_x=64,
    n_t=21,
)

PRESETS: dict[str, LPINNConfig] = {
    # Krishnapriyan et al. 2021 sec. 3.1 setting (x in [0, 2pi), t in [0, 1], u0 = sin x);
    # 4 x 50 tanh layers as their PINNs; budget chosen to fit a 2-core CPU in a few minutes.
    "convection": LPINNConfig(equation="convection"),
    "convection-quick": LPINNConfig(equation="convection", **_QUICK),
    # Raissi et al. 2019 sec. 3.1 (nu = 0.01/pi, u0 = -sin(pi x)), periodic on [-1, 1).
    # Two harmonics: the steepening front needs more than one Fourier mode of the label. The
    # division-free residual and the fold penalty keep training finite where particles crowd
    # into the shock (the quotient form diverges there; see the package README).
    "burgers": LPINNConfig(
        equation="burgers",
        harmonics=2,
        residual_form="polynomial",
        weights=LossWeights(monotone=10.0),
    ),
    "burgers-quick": LPINNConfig(
        equation="burgers",
        residual_form="polynomial",
        weights=LossWeights(monotone=10.0),
        **_QUICK,
    ),
}


def get_config(equation: str, *, quick: bool = False, **overrides: Any) -> LPINNConfig:
    """The preset for ``equation`` (``-quick`` variant if asked), with ``overrides`` applied."""
    name = f"{equation}-quick" if quick else equation
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)


@dataclass
class TrainResult:
    """A trained model and its loss history (one entry per Adam step / L-BFGS evaluation)."""

    model: nn.Module
    history: list[float]
    terms: dict[str, float]
    adam_seconds: float
    lbfgs_seconds: float


def _points(config: LPINNConfig, problem: Problem) -> CollocationPoints:
    gen = torch.Generator().manual_seed(config.seed)
    return sample_collocation(
        problem,
        config.n_residual,
        config.n_initial,
        config.n_boundary,
        generator=gen,
        dtype=_DTYPES[config.dtype],
    )


def _build(config: LPINNConfig, make: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = make()
    return model.to(_DTYPES[config.dtype])


def _fit(
    model: nn.Module,
    loss_fn: Callable[[], tuple[Tensor, dict[str, float]]],
    config: LPINNConfig,
    *,
    progress: bool,
    desc: str,
) -> TrainResult:
    from tqdm.auto import tqdm

    history: list[float] = []
    params = list(model.parameters())
    t0 = time.perf_counter()
    if config.adam_steps:
        adam = torch.optim.Adam(params, lr=config.adam_lr)
        for _ in tqdm(range(config.adam_steps), desc=f"{desc} adam", disable=not progress):
            adam.zero_grad()
            loss, _ = loss_fn()
            loss.backward()
            adam.step()
            history.append(float(loss.detach()))
    t1 = time.perf_counter()
    if config.lbfgs_steps:
        backup = [p.detach().clone() for p in params]
        before = float(loss_fn()[0].detach())
        lbfgs = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=config.lbfgs_steps,
            history_size=50,
            tolerance_grad=1e-9,
            tolerance_change=1e-12,
            line_search_fn="strong_wolfe",
        )
        bar = tqdm(total=config.lbfgs_steps, desc=f"{desc} l-bfgs", disable=not progress)

        def closure() -> Tensor:
            lbfgs.zero_grad()
            loss, _ = loss_fn()
            loss.backward()
            history.append(float(loss.detach()))
            bar.update(1)
            return loss

        lbfgs.step(closure)
        bar.close()
        final = float(loss_fn()[0].detach())
        if not math.isfinite(final) or final > before:  # L-BFGS diverged: keep the Adam result
            with torch.no_grad():
                for p, b in zip(params, backup, strict=True):
                    p.copy_(b)
    t2 = time.perf_counter()
    _, terms = loss_fn()
    return TrainResult(model, history, terms, t1 - t0, t2 - t1)


def train_lpinn(config: LPINNConfig, *, progress: bool = True) -> TrainResult:
    """Train a `LagrangianPINN` on ``config.problem()``."""
    problem = config.problem()
    model = _build(
        config,
        lambda: LagrangianPINN(
            problem.x_min,
            problem.length,
            problem.t_max,
            speed_scale=problem.speed_scale,
            hidden=config.hidden,
            depth=config.depth,
            harmonics=config.harmonics,
        ),
    )
    points = _points(config, problem)
    return _fit(
        model,
        lambda: lagrangian_loss(model, problem, points, config.weights, form=config.residual_form),
        config,
        progress=progress,
        desc="lpinn",
    )


def train_pinn(config: LPINNConfig, *, progress: bool = True) -> TrainResult:
    """Train the Eulerian `EulerianPINN` baseline on ``config.problem()``."""
    problem = config.problem()
    model = _build(
        config,
        lambda: EulerianPINN(
            problem.x_min, problem.length, problem.t_max, hidden=config.hidden, depth=config.depth
        ),
    )
    points = _points(config, problem)
    return _fit(
        model,
        lambda: eulerian_loss(model, problem, points, config.weights),
        config,
        progress=progress,
        desc="pinn",
    )


@dataclass
class Evaluation:
    """Prediction on the evaluation grid.

    Attributes:
        rel_l2: ``||u - u_exact|| / ||u_exact||`` over the (t, x) grid.
        x: (n_x,) grid positions.
        t: (n_t,) grid times.
        u: (n_t, n_x) prediction.
        u_exact: (n_t, n_x) exact solution.
        extra: further scalars (e.g. the LPINN error at its particles).
    """

    rel_l2: float
    x: np.ndarray
    t: np.ndarray
    u: np.ndarray
    u_exact: np.ndarray
    extra: dict[str, float] = field(default_factory=dict)


def _rel_l2(u: np.ndarray | Tensor, ref: np.ndarray | Tensor) -> float:
    u, ref = np.asarray(u, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(u - ref) / np.linalg.norm(ref))


def _param_dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


@torch.no_grad()
def evaluate_lpinn(
    model: LagrangianPINN, problem: Problem, *, n_x: int = 256, n_t: int = 101, oversample: int = 4
) -> Evaluation:
    """Relative L2 error of an LPINN on the Eulerian grid and at its particles.

    The particles' states at ``oversample * n_x`` labels per time are interpolated (periodic,
    linear) onto the grid; ``extra["rel_l2_particles"]`` compares ``u(xi, t)`` with
    ``u_exact(x(xi, t), t)`` instead.
    """
    x, t = problem.grid(n_x, n_t)
    dtype = _param_dtype(model)
    xi = torch.linspace(problem.x_min, problem.x_min + problem.length, oversample * n_x + 1)[:-1]
    xi_b, t_b = torch.meshgrid(xi.to(dtype), t.to(dtype), indexing="xy")  # (n_t, M)
    xp, up = model(xi_b.reshape(-1), t_b.reshape(-1))
    xp = xp.reshape(n_t, -1).double()
    up = up.reshape(n_t, -1).double()
    u_at_particles = problem.exact(xp, t[:, None])
    shifted = (xp - problem.x_min).numpy()
    u = np.stack(
        [
            np.interp((x - problem.x_min).numpy(), shifted[j], up[j].numpy(), period=problem.length)
            for j in range(n_t)
        ]
    )
    u_exact = problem.exact(x[None, :], t[:, None]).numpy()
    extra = {"rel_l2_particles": _rel_l2(up, u_at_particles)}
    return Evaluation(_rel_l2(u, u_exact), x.numpy(), t.numpy(), u, u_exact, extra)


@torch.no_grad()
def evaluate_pinn(
    model: EulerianPINN, problem: Problem, *, n_x: int = 256, n_t: int = 101
) -> Evaluation:
    """Relative L2 error of an Eulerian PINN on the ``(t, x)`` grid."""
    x, t = problem.grid(n_x, n_t)
    dtype = _param_dtype(model)
    xb, tb = torch.meshgrid(x, t, indexing="xy")
    u = model(xb.reshape(-1).to(dtype), tb.reshape(-1).to(dtype)).reshape(n_t, n_x).double()
    u_exact = problem.exact(x[None, :], t[:, None])
    return Evaluation(_rel_l2(u, u_exact), x.numpy(), t.numpy(), u.numpy(), u_exact.numpy())


@dataclass
class Comparison:
    """Result of `compare`: both trainings and both evaluations."""

    config: LPINNConfig
    lpinn: Evaluation
    pinn: Evaluation
    lpinn_train: TrainResult
    pinn_train: TrainResult

    def metrics(self) -> dict[str, Any]:
        """JSON-ready summary (errors, final losses, timings, config)."""

        def summary(ev: Evaluation, tr: TrainResult) -> dict[str, Any]:
            return {
                "rel_l2": ev.rel_l2,
                **ev.extra,
                "final_loss": tr.history[-1] if tr.history else None,
                "loss_terms": tr.terms,
                "evaluations": len(tr.history),
                "parameters": sum(p.numel() for p in tr.model.parameters()),
                "adam_seconds": round(tr.adam_seconds, 2),
                "lbfgs_seconds": round(tr.lbfgs_seconds, 2),
            }

        cfg = dataclasses.asdict(self.config)
        return {
            "equation": self.config.equation,
            "lpinn": summary(self.lpinn, self.lpinn_train),
            "pinn": summary(self.pinn, self.pinn_train),
            "config": cfg,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }


def compare(config: LPINNConfig, *, progress: bool = True) -> Comparison:
    """Train an LPINN and the Eulerian PINN with the same budget and evaluate both."""
    problem = config.problem()
    lp = train_lpinn(config, progress=progress)
    pn = train_pinn(config, progress=progress)
    if not isinstance(lp.model, LagrangianPINN) or not isinstance(pn.model, EulerianPINN):
        raise TypeError("internal: unexpected model types")  # pragma: no cover
    ev_l = evaluate_lpinn(lp.model, problem, n_x=config.n_x, n_t=config.n_t)
    ev_p = evaluate_pinn(pn.model, problem, n_x=config.n_x, n_t=config.n_t)
    return Comparison(config, ev_l, ev_p, lp, pn)


def sweep_beta(
    betas: list[float] | tuple[float, ...],
    *,
    quick: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> dict[float, Comparison]:
    """`compare` on convection for each ``beta`` (Krishnapriyan et al. 2021, fig. 1 sweep).

    >>> res = sweep_beta([1.0], quick=True, progress=False, adam_steps=2, lbfgs_steps=0)
    >>> sorted(res)
    [1.0]
    """
    return {
        float(b): compare(
            get_config("convection", quick=quick, beta=float(b), **overrides), progress=progress
        )
        for b in betas
    }


def plot_comparison(comparison: Comparison, path: str | Path) -> Path:
    """Save exact / LPINN / PINN solutions and their absolute errors as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev_l, ev_p = comparison.lpinn, comparison.pinn
    extent = (ev_l.t[0], ev_l.t[-1], ev_l.x[0], ev_l.x[-1])
    fig, axes = plt.subplots(2, 3, figsize=(13, 6), constrained_layout=True)
    panels = [
        (axes[0, 0], ev_l.u_exact, "exact"),
        (axes[0, 1], ev_l.u, f"LPINN (rel. L2 {ev_l.rel_l2:.2e})"),
        (axes[0, 2], ev_p.u, f"PINN (rel. L2 {ev_p.rel_l2:.2e})"),
        (axes[1, 1], np.abs(ev_l.u - ev_l.u_exact), "|LPINN - exact|"),
        (axes[1, 2], np.abs(ev_p.u - ev_p.u_exact), "|PINN - exact|"),
    ]
    for ax, img, title in panels:
        cmap = "viridis" if title.startswith("|") else "RdBu_r"
        im = ax.imshow(img.T, origin="lower", aspect="auto", extent=extent, cmap=cmap)
        ax.set(title=title, xlabel="t", ylabel="x")
        fig.colorbar(im, ax=ax)
    ax = axes[1, 0]
    for name, tr in (("LPINN", comparison.lpinn_train), ("PINN", comparison.pinn_train)):
        ax.semilogy(tr.history, label=name)
    ax.axvline(comparison.config.adam_steps, color="k", lw=0.5, ls="--")
    ax.set(title="training loss (Adam | L-BFGS)", xlabel="evaluation")
    ax.legend()
    cfg = comparison.config
    label = (
        f"beta={cfg.beta:g}"
        if cfg.equation == "convection"
        else f"nu={comparison.config.problem().nu:.4g}"
    )
    fig.suptitle(f"{cfg.equation}, {label}")
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_metrics(comparison: Comparison, path: str | Path) -> Path:
    """Write `Comparison.metrics` as JSON."""
    path = Path(path)
    with contextlib.suppress(FileExistsError):
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(comparison.metrics(), indent=2, default=str) + "\n")
    return path

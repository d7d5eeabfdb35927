"""Lagrangian PINNs (Mojgani, Balajewicz & Hassanzadeh 2022, arXiv:2205.02902).

A two-branch network on the Lagrangian frame: one branch gives the characteristic (particle
path) ``x(xi, t)``, the other the state ``u(xi, t)`` carried along it, with the label ``xi``
periodically embedded. Compared against the Eulerian PINN on the convection failure mode of
Krishnapriyan et al. 2021 (arXiv:2109.01050) and on viscous Burgers.
"""

from .model import MLP, EulerianPINN, LagrangianPINN, PeriodicEmbedding
from .pipeline import (
    PRESETS,
    Comparison,
    Evaluation,
    LPINNConfig,
    TrainResult,
    compare,
    evaluate_lpinn,
    evaluate_pinn,
    get_config,
    plot_comparison,
    sweep_beta,
    train_lpinn,
    train_pinn,
    write_metrics,
)
from .problems import Burgers, Convection, Problem, make_problem
from .residuals import (
    CollocationPoints,
    EulerianResiduals,
    LagrangianResiduals,
    LossWeights,
    eulerian_loss,
    eulerian_residuals,
    lagrangian_loss,
    lagrangian_residuals,
    sample_collocation,
)

__all__ = [
    "MLP",
    "PRESETS",
    "Burgers",
    "CollocationPoints",
    "Comparison",
    "Convection",
    "EulerianPINN",
    "EulerianResiduals",
    "Evaluation",
    "LPINNConfig",
    "LagrangianPINN",
    "LagrangianResiduals",
    "LossWeights",
    "PeriodicEmbedding",
    "Problem",
    "TrainResult",
    "compare",
    "eulerian_loss",
    "eulerian_residuals",
    "evaluate_lpinn",
    "evaluate_pinn",
    "get_config",
    "lagrangian_loss",
    "lagrangian_residuals",
    "make_problem",
    "plot_comparison",
    "sample_collocation",
    "sweep_beta",
    "train_lpinn",
    "train_pinn",
    "write_metrics",
]

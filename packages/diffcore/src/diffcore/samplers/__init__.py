"""Samplers: time grids, step rules and the one :func:`sample` loop."""

from .adaptive import AdaptiveDPMSolver
from .base import StepRule
from .dmcmc import DMCMCOutput, denoising_mcmc, time_score_from_log_density
from .dpm import (
    DDIM,
    DPMSolver,
    DPMSolverPP2M,
    DPMSolverPP2S,
    DPMSolverPP3M,
    SDEDPMSolverPP2M,
    UniPC,
)
from .dpm_v3 import DPMSolverV3, ModelStatistics, estimate_statistics
from .grids import append_zero, given, karras, quadratic_t, uniform_lambda, uniform_t
from .learned import LearnedMultistep, fit_multistep
from .loop import SampleOutput, sample
from .momentum import GHVB, DPMSolverPP2MHeavyBall, PLMSHeavyBall
from .ode import RK4, DormandPrince, Euler, Heun, Midpoint, RFSolver
from .sde import (
    S4,
    DDPMAncestral,
    EulerMaruyama,
    Langevin,
    PredictorCorrector,
    ReverseDiffusion,
)
from .search import learned_grid, searched_grid
from .split import sample_n

__all__ = [
    "AdaptiveDPMSolver",
    "DDIM",
    "DMCMCOutput",
    "RK4",
    "DDPMAncestral",
    "DPMSolver",
    "DPMSolverPP2M",
    "DPMSolverPP2MHeavyBall",
    "DPMSolverPP2S",
    "DPMSolverPP3M",
    "DormandPrince",
    "Euler",
    "GHVB",
    "EulerMaruyama",
    "Heun",
    "Langevin",
    "Midpoint",
    "PLMSHeavyBall",
    "PredictorCorrector",
    "RFSolver",
    "S4",
    "ReverseDiffusion",
    "SDEDPMSolverPP2M",
    "SampleOutput",
    "StepRule",
    "UniPC",
    "append_zero",
    "denoising_mcmc",
    "given",
    "karras",
    "quadratic_t",
    "sample",
    "sample_n",
    "searched_grid",
    "time_score_from_log_density",
    "learned_grid",
    "fit_multistep",
    "LearnedMultistep",
    "estimate_statistics",
    "ModelStatistics",
    "DPMSolverV3",
    "uniform_lambda",
    "uniform_t",
]

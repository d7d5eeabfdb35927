"""Reference PDE solvers (torch, batched): exact and spectral solutions used as ground truth."""

from .burgers import SINE, BurgersInitialCondition, burgers_cole_hopf
from .convection import convection_diffusion_fft, convection_exact, periodic_grid

__all__ = [
    "SINE",
    "BurgersInitialCondition",
    "burgers_cole_hopf",
    "convection_diffusion_fft",
    "convection_exact",
    "periodic_grid",
]

"""PDE-Refiner (Lippe et al. 2023, arXiv:2308.05732) and its MSE-trained U-Net baseline."""

from .config import PRESETS, PDERefinerConfig, get_preset
from .model import PDERefiner, RefinerSchedule, SurrogateUNet, condition_scalars
from .pipeline import evaluate, load_model, make_pairs, plot_rollout, rollout, train

__all__ = [
    "PRESETS",
    "PDERefiner",
    "PDERefinerConfig",
    "RefinerSchedule",
    "SurrogateUNet",
    "condition_scalars",
    "evaluate",
    "get_preset",
    "load_model",
    "make_pairs",
    "plot_rollout",
    "rollout",
    "train",
]

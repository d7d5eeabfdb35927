"""Discrete diffusion over token sequences: masked and uniform CTMC processes, ELBOs, samplers.

States are (B, L) LongTensors of token ids in ``[0, V)``; the masked process adds the mask id
``V``. The four ideas of diffcore, discrete edition:

* processes: :class:`MaskedProcess`, :class:`UniformProcess` with the schedules
  :class:`LogLinearSchedule`, :class:`LinearSchedule`, :class:`CosineSchedule`;
* prediction: :class:`DiscreteDenoiser` turns a network's logits into ``p(x0 | x_t)``;
* objectives: :class:`MaskedDiffusionELBO` (MDLM), :class:`UniformDiffusionELBO`;
* step rules for :func:`diffcore.samplers.sample`: :class:`Ancestral`, :class:`TauLeaping`,
  :class:`GreedyUnmask`, :class:`EnergyAncestral` (EDLM), :class:`GumbelAncestral` with
  :func:`relaxed_sample` (DRAKES).

:class:`TokenDenoiser` is a small reference network; :mod:`~diffcore.discrete.exact` gives exact
posteriors and model likelihoods by enumeration for tiny problems.
"""

from .denoiser import DiscreteDenoiser, as_denoiser
from .energy import EnergyAncestral, importance_resample
from .exact import ExactPosterior, all_sequences, model_distribution
from .nets import TOKEN_DENOISER_PRESETS, TokenDenoiser, TokenDenoiserConfig
from .objectives import MaskedDiffusionELBO, UniformDiffusionELBO
from .processes import DiscreteProcess, MaskedProcess, UniformProcess
from .relaxed import GumbelAncestral, relaxed_sample
from .samplers import Ancestral, GreedyUnmask, TauLeaping
from .schedules import CosineSchedule, DiscreteSchedule, LinearSchedule, LogLinearSchedule

__all__ = [
    "TOKEN_DENOISER_PRESETS",
    "Ancestral",
    "CosineSchedule",
    "DiscreteDenoiser",
    "DiscreteProcess",
    "DiscreteSchedule",
    "EnergyAncestral",
    "ExactPosterior",
    "GreedyUnmask",
    "GumbelAncestral",
    "LinearSchedule",
    "LogLinearSchedule",
    "MaskedDiffusionELBO",
    "MaskedProcess",
    "TauLeaping",
    "TokenDenoiser",
    "TokenDenoiserConfig",
    "UniformDiffusionELBO",
    "UniformProcess",
    "all_sequences",
    "as_denoiser",
    "importance_resample",
    "model_distribution",
    "relaxed_sample",
]

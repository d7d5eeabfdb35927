"""Guidance: wrappers that turn predictions into better ones, usable with every sampler.

Wrappers with the face of a Denoiser (``process``, ``nfe``, ``__call__(x, t) -> Prediction``):
classifier-free and classifier guidance, composition, posterior sampling, observation
self-guidance, dynamic thresholding. Step rules that steer or select states: FlowChef, SVDD.
An optimiser rather than a sampler: RED-Diff.
"""

from .cfg import ClassifierFreeGuidance, Composition
from .classifier import ClassifierGuidance
from .flowchef import FlowChef
from .posterior import PosteriorSampling
from .red_diff import gaussian_weight, red_diff
from .self_guidance import ObservationGuidance
from .svdd import (
    SVDD,
    PosteriorMeanValue,
    RegressedValue,
    ValueData,
    fit_value,
    rollout_values,
)
from .thresholding import DynamicThresholding

__all__ = [
    "SVDD",
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "Composition",
    "DynamicThresholding",
    "FlowChef",
    "ObservationGuidance",
    "PosteriorMeanValue",
    "PosteriorSampling",
    "RegressedValue",
    "ValueData",
    "fit_value",
    "gaussian_weight",
    "red_diff",
    "rollout_values",
]

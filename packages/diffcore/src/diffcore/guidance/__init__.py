"""Guidance: wrappers that turn predictions into better ones, usable with every sampler."""

from .cfg import ClassifierFreeGuidance, Composition
from .posterior import PosteriorSampling

__all__ = ["ClassifierFreeGuidance", "Composition", "PosteriorSampling"]

"""Guidance: wrappers that turn predictions into better ones, usable with every sampler."""

from .cfg import ClassifierFreeGuidance, Composition

__all__ = ["ClassifierFreeGuidance", "Composition"]

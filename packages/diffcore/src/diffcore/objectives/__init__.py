"""Training objectives and training-time distributions."""

from .losses import WEIGHTINGS, DenoisingScoreMatching, FlowMatching
from .reflow import reflow_pairs
from .time_samplers import LogitNormalTime, LogNormalSigma, UniformTime, UShapedTime

__all__ = [
    "WEIGHTINGS",
    "DenoisingScoreMatching",
    "FlowMatching",
    "LogNormalSigma",
    "LogitNormalTime",
    "UShapedTime",
    "UniformTime",
    "reflow_pairs",
]

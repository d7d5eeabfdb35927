"""Forward processes and their constraints.

Forward processes. A tuple or dict of processes matching a tuple/dict state is a product
process: each leaf diffuses under its own process with one shared time.
"""

from .base import Process
from .constraints import Constraint, NodeMask, SymmetricAdjacency, ZeroCenterOfMass
from .gaussian import (
    EDM,
    VE,
    CosineVP,
    DiscreteVP,
    GaussianProcess,
    LinearVP,
    RectifiedFlow,
    SubVP,
)
from .interpolants import (
    BrownianBridge,
    LinearInterpolant,
    StochasticInterpolant,
    TrigInterpolant,
)
from .pfgmpp import PFGMPP

__all__ = [
    "EDM",
    "PFGMPP",
    "VE",
    "BrownianBridge",
    "Constraint",
    "CosineVP",
    "DiscreteVP",
    "GaussianProcess",
    "LinearInterpolant",
    "LinearVP",
    "NodeMask",
    "Process",
    "RectifiedFlow",
    "StochasticInterpolant",
    "SubVP",
    "SymmetricAdjacency",
    "TrigInterpolant",
    "ZeroCenterOfMass",
]

"""diffcore: the shared core of difflab.

Four ideas kept apart: a **process** (the forward corruption), a **prediction** (what a network
outputs, converted in one place), an **objective** (the training loss) and a **sampler** (a time
grid and a step rule run by one loop). States are tensors or tuples/dicts of tensors.

Subpackages: :mod:`diffcore.processes`, :mod:`diffcore.predictions`, :mod:`diffcore.objectives`,
:mod:`diffcore.samplers`, :mod:`diffcore.likelihood`, :mod:`diffcore.metrics`,
:mod:`diffcore.nets`, :mod:`diffcore.train`, :mod:`diffcore.ops`, :mod:`diffcore.testing`.
"""

from importlib.metadata import version as _version

from . import discrete  # noqa: F401  (diffcore.discrete: token-sequence diffusion)
from .likelihood import LikelihoodOutput, log_likelihood
from .objectives import DenoisingScoreMatching, FlowMatching
from .predictions import Denoiser, Prediction, convert
from .samplers import SampleOutput, sample

__version__ = _version("diffcore")
__all__ = [
    "DenoisingScoreMatching",
    "Denoiser",
    "FlowMatching",
    "LikelihoodOutput",
    "Prediction",
    "SampleOutput",
    "__version__",
    "convert",
    "log_likelihood",
    "sample",
]

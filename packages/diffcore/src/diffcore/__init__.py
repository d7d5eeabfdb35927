"""diffcore: the shared core of difflab (processes, predictions, objectives, samplers)."""

from importlib.metadata import version as _version

__version__ = _version("diffcore")
__all__ = ["__version__"]

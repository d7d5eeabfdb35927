"""difflab.motion: diffusion and flow models for human motion (on diffcore)."""

from importlib.metadata import version as _version

__version__ = _version("difflab-motion")
__all__ = ["__version__"]

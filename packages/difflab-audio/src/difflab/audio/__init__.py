"""difflab.audio: diffusion and flow models for audio (on diffcore)."""

from importlib.metadata import version as _version

__version__ = _version("difflab-audio")
__all__ = ["__version__"]

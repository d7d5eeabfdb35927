"""difflab.brain3d: diffusion and flow models for 3-D shapes and brain decoding (on diffcore)."""

from importlib.metadata import version as _version

__version__ = _version("difflab-brain3d")
__all__ = ["__version__"]

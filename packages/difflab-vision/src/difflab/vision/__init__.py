"""difflab.vision: diffusion and flow models for images (on diffcore)."""

from importlib.metadata import version as _version

__version__ = _version("difflab-vision")
__all__ = ["__version__"]

"""difflab.physics: diffusion and flow models for PDE surrogates (on diffcore)."""

from importlib.metadata import version as _version

__version__ = _version("difflab-physics")
__all__ = ["__version__"]

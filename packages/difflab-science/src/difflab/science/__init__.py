"""difflab.science: diffusion and flow models for molecules, materials and graphs (on diffcore)."""

from importlib.metadata import version as _version

__version__ = _version("difflab-science")
__all__ = ["__version__"]

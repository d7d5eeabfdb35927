"""difflab.medical: diffusion and flow models for medical imaging (on diffcore)."""

from importlib.metadata import version as _version

__version__ = _version("difflab-medical")
__all__ = ["__version__"]

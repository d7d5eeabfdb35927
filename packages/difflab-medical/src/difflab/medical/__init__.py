"""difflab.medical: diffusion priors for CT/MRI inverse problems and hyperspectral restoration.

Submodules (imported on demand, so ``import difflab.medical`` stays light):

* :mod:`difflab.medical.operators`: CT (parallel-beam Radon, FBP), MRI (Cartesian masks,
  orthonormal FFT) and hyperspectral degradations, on diffcore's ``LinearOperator``.
* :mod:`difflab.medical.data`: NIfTI in/out, synthetic 3-D phantoms, hyperspectral cubes.
* :mod:`difflab.medical.mbir`: DiffusionMBIR (Chung et al. CVPR 2023).
* :mod:`difflab.medical.dds2m`: DDS2M (Miao et al. ICCV 2023).
* :mod:`difflab.medical.metrics`: PSNR/SSIM per view, SAM.
* :mod:`difflab.medical.viz`: orthogonal-view PNGs.
"""

from importlib.metadata import version as _version

__version__ = _version("difflab-medical")
__all__ = ["__version__"]

"""PNG figures: orthogonal views of volumes and false-colour views of hyperspectral cubes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch import Tensor

__all__ = ["save_cube_views", "save_orthoviews"]


def _figure(rows: int, cols: int):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.4 * rows), squeeze=False)
    return plt, fig, axes


def save_orthoviews(
    path: str | os.PathLike[str], volumes: dict[str, Tensor], *, vmin=None, vmax=None
) -> Path:
    """Middle axial, coronal and sagittal slices of each (D, H, W) volume, one row each."""
    plt, fig, axes = _figure(len(volumes), 3)
    first = next(iter(volumes.values()))
    lo = float(first.min()) if vmin is None else vmin
    hi = float(first.max()) if vmax is None else vmax
    for row, (name, vol) in enumerate(volumes.items()):
        v = vol.detach().float().cpu().numpy()
        d, h, w = v.shape
        views = (v[d // 2], v[:, h // 2, :], v[:, :, w // 2])
        for col, (img, title) in enumerate(
            zip(views, ("axial", "coronal", "sagittal"), strict=True)
        ):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower" if col else "upper")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title)
            if col == 0:
                ax.set_ylabel(name)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_cube_views(path: str | os.PathLike[str], cubes: dict[str, Tensor]) -> Path:
    """False-colour RGB (three bands at 1/6, 1/2 and 5/6 of the range) of (C, H, W) cubes."""
    plt, fig, axes = _figure(1, len(cubes))
    for col, (name, cube) in enumerate(cubes.items()):
        c = cube.detach().float().cpu().numpy()
        n = c.shape[0]
        rgb = np.stack([c[(5 * n) // 6], c[n // 2], c[n // 6]], axis=-1)
        ax = axes[0, col]
        ax.imshow(np.clip(rgb, 0, 1))
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

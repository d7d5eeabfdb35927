"""Backend choice for `diffcore.ops`: the torch twin by default, Triton on CUDA.

``backend="auto"`` picks the Triton kernels for CUDA tensors when triton imports (and the op is
within the kernel's limits), the pure-torch twin otherwise. ``"torch"`` and ``"triton"`` force
one; forcing Triton on CPU tensors works only under Triton's interpreter.

The torch twin is the blocked brute force of `_reference`, or for large point sets in at most
three dimensions the cell grid of `_grid`; both are exact and return identical results.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from typing import Literal

import torch
from torch import Tensor

from . import _grid, _reference

Backend = Literal["auto", "torch", "triton"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "triton")
# Working memory one block of the torch twin may use (bytes). 64 MiB keeps blocks large enough
# that Python overhead is negligible while a 200k-point graph never needs an N x N matrix.
DEFAULT_MEMORY_BUDGET = 64 * 2**20
# Same limit as diffcore.ops.triton.MAX_K, repeated so choosing a backend needs no import.
_TRITON_MAX_K = 128
# The torch backend hashes points into a cell grid (exact, see _grid.py) when the points have
# at most _grid.MAX_DIM coordinates and some query searches at least this many of them; below
# that the blocked brute force is as fast (measured on CPU, uniform points in a cube).
GRID_MIN_POINTS = 2048


@functools.cache
def triton_available() -> bool:
    """Whether the triton package imports (it ships with torch's CUDA wheels on Linux)."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        importlib.import_module("triton")
    except Exception:  # a broken install (driver, libc) counts as unavailable
        return False
    return True


def check_memory_budget(memory_budget: object) -> int:
    """Return the block memory budget in bytes (None means DEFAULT_MEMORY_BUDGET)."""
    if memory_budget is None:
        return DEFAULT_MEMORY_BUDGET
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 1:
        raise ValueError(f"`memory_budget` must be a positive int (bytes), got {memory_budget!r}.")
    return memory_budget


def choose_backend(backend: object, device: torch.device, *, k: int | None = None) -> str:
    """Resolve ``backend`` to "torch" or "triton" for tensors on ``device``.

    Args:
        backend: "auto", "torch" or "triton".
        device: where the inputs live.
        k: neighbours per query for k-nearest searches (the kernel has an upper limit).

    Returns:
        "torch" or "triton".
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {', '.join(BACKENDS)}; got {backend!r}.")
    if backend == "torch":
        return "torch"
    if backend == "auto":
        fits = k is None or k <= _TRITON_MAX_K
        return "triton" if device.type == "cuda" and fits and triton_available() else "torch"
    if not triton_available():
        raise RuntimeError(
            "backend='triton' was requested but triton does not import; install "
            "`diffcore[triton]` or use backend='torch'."
        )
    from . import triton as kernels

    if device.type != "cuda" and not kernels.INTERPRETED:
        raise ValueError(
            f"backend='triton' needs CUDA tensors, got tensors on {device} (set "
            "TRITON_INTERPRET=1 before importing triton to run the kernels on CPU, slowly)."
        )
    if k is not None and k > kernels.MAX_K:
        raise ValueError(f"backend='triton' takes k <= {kernels.MAX_K}, got {k}; use 'torch'.")
    return "triton"


def _use_grid(q: Tensor, lo: Tensor, hi: Tensor) -> bool:
    if q.shape[1] > _grid.MAX_DIM or q.shape[0] == 0:
        return False
    return int((hi - lo).max()) >= GRID_MIN_POINTS


def knn_search(
    q: Tensor,
    x: Tensor,
    lo: Tensor,
    hi: Tensor,
    k: int,
    *,
    exclude: Tensor | None,
    norm: int,
    backend: str,
    memory_budget: int,
) -> tuple[Tensor, Tensor]:
    """The k nearest candidates per query; see `diffcore.ops._reference.knn_search`."""
    if choose_backend(backend, q.device, k=k) == "triton":
        from . import triton as kernels

        return kernels.knn_search(q, x, lo, hi, k, exclude=exclude, norm=norm)
    if _use_grid(q, lo, hi):
        return _grid.knn_search(
            q, x, lo, hi, k, exclude=exclude, norm=norm, memory_budget=memory_budget
        )
    return _reference.knn_search(
        q, x, lo, hi, k, exclude=exclude, norm=norm, memory_budget=memory_budget
    )


def radius_search(
    q: Tensor,
    x: Tensor,
    lo: Tensor,
    hi: Tensor,
    r2: Tensor,
    max_num_neighbors: int | None,
    *,
    exclude: Tensor | None,
    backend: str,
    memory_budget: int,
) -> tuple[Tensor, Tensor]:
    """Candidates within a radius per query; see `diffcore.ops._reference.radius_search`."""
    if choose_backend(backend, q.device) == "triton":
        from . import triton as kernels

        return kernels.radius_search(q, x, lo, hi, r2, max_num_neighbors, exclude=exclude)
    if _use_grid(q, lo, hi):
        return _grid.radius_search(
            q, x, lo, hi, r2, max_num_neighbors, exclude=exclude, memory_budget=memory_budget
        )
    return _reference.radius_search(
        q, x, lo, hi, r2, max_num_neighbors, exclude=exclude, memory_budget=memory_budget
    )

"""Input checks shared by the public ops: each error names the argument, what arrived and why."""

from __future__ import annotations

import math

import torch
from torch import Tensor

SUPPORTED_DTYPES = (torch.float32, torch.float64)
# The squared distance of two points is at most D * (2 * max|x|)^2; this factor is the 2^2.
_PAIR_SPREAD = 4.0


def check_int(value: object, name: str, *, minimum: int) -> int:
    """Return `value` as an int after checking it is an integer (not a bool) >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    return value


def check_radius(r: object) -> float:
    """Return `r` as a float after checking it is a finite number > 0."""
    if isinstance(r, bool) or not isinstance(r, int | float):
        raise ValueError(f"`r` must be a positive float, got {r!r}.")
    r = float(r)
    if not math.isfinite(r) or r <= 0.0:
        raise ValueError(f"`r` must be finite and > 0, got {r}.")
    return r


def check_coordinates(x: object, name: str, ndim: int) -> Tensor:
    """Check a coordinate tensor: shape, float32/float64, finite, and small enough to square.

    Args:
        x: the tensor; the last axis holds the D >= 1 coordinates.
        name: argument name used in error messages.
        ndim: expected number of axes (2 for (N, D), 3 for (B, P, D)).

    Returns:
        x, unchanged.
    """
    shape = "(N, D)" if ndim == 2 else "(B, P, D)"
    if not isinstance(x, Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor of shape {shape}, got {type(x)}.")
    if x.dim() != ndim:
        hint = " (use x[:, None] for 1-d coordinates)" if ndim == 2 and x.dim() == 1 else ""
        raise ValueError(f"`{name}` must have shape {shape}, got {tuple(x.shape)}{hint}.")
    if x.shape[-1] < 1:
        raise ValueError(f"`{name}` needs at least one coordinate, got shape {tuple(x.shape)}.")
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(
            f"`{name}` must be float32 or float64, got {x.dtype}; cast it with `.float()`."
        )
    if x.numel() == 0:
        return x
    biggest = float(x.detach().abs().amax())
    if not math.isfinite(biggest):
        flat = x.detach().reshape(-1, x.shape[-1])
        bad = int((~torch.isfinite(flat)).any(dim=1).nonzero()[0, 0])
        raise ValueError(f"`{name}` has NaN or infinite coordinates (first at point {bad}).")
    limit = math.sqrt(torch.finfo(x.dtype).max / (_PAIR_SPREAD * x.shape[-1]))
    if biggest > limit:
        raise ValueError(
            f"`{name}` has coordinates up to {biggest:.3g}; squared distances would overflow "
            f"{x.dtype} (limit {limit:.3g}). Rescale the points or use float64."
        )
    return x


def check_batch(batch: object, n: int, device: torch.device) -> Tensor | None:
    """Check a PyG batch vector: (N,) integers >= 0, sorted, on the device of `x`."""
    if batch is None:
        return None
    if not isinstance(batch, Tensor):
        raise ValueError(
            f"`batch` must be a torch.Tensor of shape (N,) or None, got {type(batch)}."
        )
    if batch.dim() != 1 or batch.shape[0] != n:
        raise ValueError(f"`batch` must have shape ({n},) to match `x`, got {tuple(batch.shape)}.")
    if batch.dtype.is_floating_point or batch.dtype.is_complex or batch.dtype == torch.bool:
        raise ValueError(f"`batch` must hold integer graph ids (torch.long), got {batch.dtype}.")
    if batch.device != device:
        raise ValueError(f"`batch` is on {batch.device} but `x` is on {device}; move one of them.")
    if n == 0:
        return batch.long()
    if bool((batch[1:] < batch[:-1]).any()):
        i = int((batch[1:] < batch[:-1]).nonzero()[0, 0])
        raise ValueError(
            f"`batch` must be sorted (non-decreasing), but batch[{i}]={int(batch[i])} > "
            f"batch[{i + 1}]={int(batch[i + 1])}; sort the nodes by graph first."
        )
    if int(batch[0]) < 0:
        raise ValueError(f"`batch` must hold graph ids >= 0, got {int(batch[0])}.")
    return batch.long()


def check_lengths(lengths: object, name: str, b: int, p: int, device: torch.device) -> Tensor:
    """Check per-cloud lengths: (B,) integers in [0, P]; None means every cloud is full."""
    if lengths is None:
        return torch.full((b,), p, dtype=torch.long, device=device)
    if not isinstance(lengths, Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor of shape ({b},) or None.")
    if lengths.shape != (b,):
        raise ValueError(f"`{name}` must have shape ({b},), got {tuple(lengths.shape)}.")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise ValueError(f"`{name}` must hold integers, got {lengths.dtype}.")
    if lengths.device != device:
        raise ValueError(f"`{name}` is on {lengths.device} but the points are on {device}.")
    if b > 0:
        low, high = int(lengths.min()), int(lengths.max())
        if low < 0 or high > p:
            raise ValueError(f"`{name}` must lie in [0, {p}], got values in [{low}, {high}].")
    return lengths.long()

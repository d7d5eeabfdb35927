"""Constraints on a state leaf: projections applied to noise, network outputs and states.

A constraint holds per-batch data (a node mask), so it is built per batch and attached to a
process with ``dataclasses.replace(process, constraint=...)`` or ``process.with_constraint(...)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


class Constraint:
    """Base: ``project`` maps onto the constraint set; ``project_noise`` keeps noise standard."""

    def project(self, x: Tensor) -> Tensor:
        """Project a state or network output."""
        raise NotImplementedError

    def project_noise(self, z: Tensor) -> Tensor:
        """Turn i.i.d. standard noise into standard noise on the constraint set."""
        return self.project(z)


def _node_mask(mask: Tensor | None, x: Tensor) -> Tensor | None:
    if mask is None:
        return None
    if mask.ndim != 2 or mask.shape[0] != x.shape[0] or mask.shape[1] != x.shape[1]:
        raise ValueError(
            f"`node_mask` must have shape (B, N) = ({x.shape[0]}, {x.shape[1]}), "
            f"got {tuple(mask.shape)}"
        )
    return mask.to(x.dtype)


@dataclass(frozen=True, eq=False)
class NodeMask(Constraint):
    """Zero the padded nodes of node features ``x`` (B, N, *F); ``node_mask`` is (B, N)."""

    node_mask: Tensor | None

    def project(self, x: Tensor) -> Tensor:  # noqa: D102
        m = _node_mask(self.node_mask, x)
        if m is None:
            raise ValueError("NodeMask needs a `node_mask` of shape (B, N), got None")
        return x * m.reshape(m.shape + (1,) * (x.ndim - 2))


@dataclass(frozen=True, eq=False)
class SymmetricAdjacency(Constraint):
    """Symmetric, zero-diagonal adjacency (B, N, N), padded nodes' rows and columns zero.

    Noise keeps unit variance on every off-diagonal entry: the strict upper triangle of i.i.d.
    noise is mirrored (as GDSS does), rather than averaged with its transpose.
    """

    node_mask: Tensor | None = None

    def _check(self, x: Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != x.shape[2]:
            raise ValueError(f"adjacency must have shape (B, N, N), got {tuple(x.shape)}")

    def _mask(self, x: Tensor) -> Tensor:
        m = _node_mask(self.node_mask, x)
        return x if m is None else x * m[:, :, None] * m[:, None, :]

    def project(self, x: Tensor) -> Tensor:  # noqa: D102
        self._check(x)
        x = 0.5 * (x + x.transpose(1, 2))
        x = x - torch.diag_embed(torch.diagonal(x, dim1=1, dim2=2))
        return self._mask(x)

    def project_noise(self, z: Tensor) -> Tensor:  # noqa: D102
        self._check(z)
        upper = torch.triu(z, diagonal=1)
        return self._mask(upper + upper.transpose(1, 2))


@dataclass(frozen=True, eq=False)
class ZeroCenterOfMass(Constraint):
    """Positions (B, N, D) whose (masked) mean over nodes is zero (E(n) diffusion models).

    Projection of i.i.d. noise is standard noise on the zero-mean subspace.
    """

    node_mask: Tensor | None = None

    def project(self, x: Tensor) -> Tensor:  # noqa: D102
        if x.ndim != 3:
            raise ValueError(f"positions must have shape (B, N, D), got {tuple(x.shape)}")
        m = _node_mask(self.node_mask, x)
        if m is None:
            return x - x.mean(dim=1, keepdim=True)
        m = m[:, :, None]
        count = m.sum(dim=1, keepdim=True).clamp_min(1.0)
        mean = (x * m).sum(dim=1, keepdim=True) / count
        return (x - mean) * m

"""Dense padded batches of molecular graphs, and GDSS's quantisation of generated ones."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..graphs._convert import DenseGraphs
from ._convert import MolGraph

# GDSS utils/graph_utils.py quantize_mol: thresholds between bond orders 0 | 1 | 2 | 3.
_BOND_THRESHOLDS = (0.5, 1.5, 2.5)
_ATOM_THRESHOLD = 0.5  # GDSS sampler.py: x = where(x > 0.5, 1, 0)


def mols_to_dense(graphs: Sequence[MolGraph], max_atoms: int) -> DenseGraphs:
    """Pad molecular graphs into GDSS's tensors.

    Args:
        graphs: B graphs with at most `max_atoms` atoms and one shared vocabulary of F types.
        max_atoms: N (GDSS: 9 for QM9, 38 for ZINC250k).

    Returns:
        DenseGraphs: x (B, N, F) one-hot atom types, adj (B, N, N) float32 bond orders 0-3,
        mask (B, N).
    """
    if not graphs:
        raise ValueError("`graphs` is empty")
    types = graphs[0].atom_types
    x = torch.zeros(len(graphs), max_atoms, len(types))
    adj = torch.zeros(len(graphs), max_atoms, max_atoms)
    mask = torch.zeros(len(graphs), max_atoms, dtype=torch.bool)
    for b, g in enumerate(graphs):
        if g.atom_types != types:
            raise ValueError(f"graph {b} has atom types {g.atom_types}, graph 0 has {types}")
        n = g.num_atoms
        if n > max_atoms:
            raise ValueError(f"graph {b} has {n} atoms, more than max_atoms={max_atoms}")
        x[b, :n] = g.one_hot()
        adj[b, :n, :n] = g.bonds.float()
        mask[b, :n] = True
    return DenseGraphs(x=x, adj=adj, mask=mask)


def dense_to_mols(
    x: Tensor, adj: Tensor, atom_types: Sequence[str], mask: Tensor | None = None
) -> list[MolGraph]:
    """Read molecular graphs off (generated) dense tensors the way GDSS does.

    An atom exists where its largest feature exceeds 0.5 (and `mask`, if given, is True); its
    type is the arg-max. Bond orders are rounded to the nearest of 0-3 (thresholds 0.5, 1.5,
    2.5); the diagonal is ignored. Charges are left to GDSS's rule in ``graph_to_mol``.

    Args:
        x: (B, N, F) atom-type scores.
        adj: (B, N, N) bond-order scores, symmetric.
        atom_types: the F element symbols.
        mask: optional (B, N) bool.

    Returns:
        B graphs (possibly with zero atoms).
    """
    types = tuple(atom_types)
    if x.ndim != 3 or x.shape[-1] != len(types):
        raise ValueError(f"`x` must have shape (B, N, {len(types)}), got {tuple(x.shape)}")
    if adj.shape != (*x.shape[:2], x.shape[1]):
        raise ValueError(
            f"`adj` must have shape {(*x.shape[:2], x.shape[1])}, got {tuple(adj.shape)}"
        )
    if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(adj).all())):
        raise ValueError("`x` or `adj` contains NaN or inf")
    x, adj = x.detach().cpu(), adj.detach().cpu()
    exists = x.max(-1).values > _ATOM_THRESHOLD
    if mask is not None:
        exists &= mask.cpu().bool()
    kind = x.argmax(-1)
    order = torch.zeros(adj.shape, dtype=torch.int64)
    for t in _BOND_THRESHOLDS:
        order += (adj >= t).long()
    if not torch.equal(order, order.transpose(-1, -2)):
        raise ValueError("`adj` is not symmetric after rounding the bond orders")
    out = []
    for b in range(x.shape[0]):
        keep = exists[b]
        bonds = order[b][keep][:, keep].clone()
        bonds.fill_diagonal_(0)
        out.append(MolGraph(atoms=kind[b][keep], bonds=bonds, atom_types=types))
    return out

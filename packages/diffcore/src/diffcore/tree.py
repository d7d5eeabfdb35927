"""States that are a tensor, or a tuple/list/dict of tensors (product processes).

A *tree* here is a ``Tensor``, or a ``tuple``/``list``/``dict`` whose leaves are trees.
Everything in diffcore that touches a state goes through these few functions, so a GDSS state
``(X, A)`` or an ADiT state ``{"atoms": ..., "lattice": ...}`` is handled like a single tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import torch
from torch import Tensor

Tree: TypeAlias = Any
"""A Tensor, or a tuple / list / dict of trees."""


def is_leaf(x: Any) -> bool:
    """True when ``x`` is not a tuple, list or dict (a tensor, a process, a scalar...)."""
    return not isinstance(x, tuple | list | dict)


def tree_map(f: Callable[..., Any], tree: Tree, *rest: Tree) -> Tree:
    """Apply ``f`` leaf by leaf over trees of the same structure.

    The structure comes from ``tree``. A leaf of ``rest`` that stands where ``tree`` has a subtree
    is broadcast to every leaf under it, so one process can serve a whole tuple state.

    >>> tree_map(lambda a, b: a + b, (torch.ones(2), {"v": torch.zeros(1)}), 1.0)
    (tensor([2., 2.]), {'v': tensor([1.])})
    """
    if isinstance(tree, dict):
        return {k: tree_map(f, v, *(_child(r, k, tree) for r in rest)) for k, v in tree.items()}
    if isinstance(tree, tuple | list):
        out = [tree_map(f, v, *(_child(r, i, tree) for r in rest)) for i, v in enumerate(tree)]
        return type(tree)(out)
    return f(tree, *rest)


def _child(r: Any, key: Any, parent: Any) -> Any:
    if is_leaf(r):
        return r
    if isinstance(r, dict) != isinstance(parent, dict) or len(r) != len(parent):
        raise ValueError(
            f"tree structures differ: expected {_describe(parent)}, got {_describe(r)}"
        )
    if isinstance(r, dict) and key not in r:
        raise ValueError(f"tree structures differ: key {key!r} missing in {_describe(r)}")
    return r[key]


def _describe(t: Any) -> str:
    if isinstance(t, dict):
        return f"dict with keys {sorted(t)}"
    return f"{type(t).__name__} of length {len(t)}"


def leaves(tree: Tree) -> list[Any]:
    """The leaves of ``tree`` in a fixed order (dicts in insertion order)."""
    out: list[Any] = []
    tree_map(out.append, tree)
    return out


def broadcast_leaves(structure: Tree, tree: Tree) -> list[Any]:
    """The leaves of ``tree`` broadcast to the structure of ``structure``, in leaf order.

    E.g. the process of every state leaf, whether ``tree`` is one process or a process tree.
    """
    return leaves(tree_map(lambda _s, leaf: leaf, structure, tree))


def first_leaf(tree: Tree) -> Tensor:
    """The first tensor of ``tree``: used for batch size, device and dtype."""
    for leaf in leaves(tree):
        if isinstance(leaf, Tensor):
            return leaf
    raise ValueError("the state holds no tensor")


def batch_size(tree: Tree) -> int:
    """Leading dimension shared by every leaf."""
    sizes = {leaf.shape[0] for leaf in leaves(tree) if isinstance(leaf, Tensor)}
    if len(sizes) != 1:
        raise ValueError(f"state leaves disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


def randn_like(tree: Tree, *, generator: torch.Generator | None = None) -> Tree:
    """Standard normal noise with each leaf's shape, dtype and device, drawn from ``generator``.

    Unlike ``torch.randn_like`` this never touches the global RNG when a generator is given.
    Noise is drawn in float32 (or float64) and cast, so bfloat16 states get the same stream.
    """

    def draw(x: Tensor) -> Tensor:
        dtype = x.dtype if x.dtype == torch.float64 else torch.float32
        return torch.randn(x.shape, generator=generator, dtype=dtype, device=x.device).to(x.dtype)

    return tree_map(draw, tree)


def add(a: Tree, b: Tree) -> Tree:
    """Leafwise ``a + b``."""
    return tree_map(torch.add, a, b)


def sub(a: Tree, b: Tree) -> Tree:
    """Leafwise ``a - b``."""
    return tree_map(torch.sub, a, b)


def scale(c: Any, a: Tree) -> Tree:
    """Leafwise ``c * a`` for a python scalar or a tensor ``c`` broadcastable to every leaf."""
    return tree_map(lambda x: c * x, a)


def axpy(a: Any, x: Tree, y: Tree) -> Tree:
    """Leafwise ``a * x + y``."""
    return tree_map(lambda xi, yi: a * xi + yi, x, y)


def lincomb(coeffs: list[Any], trees: list[Tree]) -> Tree:
    """Leafwise ``sum_i coeffs[i] * trees[i]``."""
    if len(coeffs) != len(trees):
        raise ValueError(f"got {len(coeffs)} coefficients for {len(trees)} trees")

    def combine(*xs: Tensor) -> Tensor:
        out = coeffs[0] * xs[0]
        for c, x in zip(coeffs[1:], xs[1:], strict=True):
            out = out + c * x
        return out

    return tree_map(combine, trees[0], *trees[1:])


def all_finite(tree: Tree) -> bool:
    """True when every leaf is finite."""
    return all(bool(torch.isfinite(x).all()) for x in leaves(tree) if isinstance(x, Tensor))


def expand_like(c: Tensor, x: Tensor) -> Tensor:
    """Reshape per-sample coefficients ``c`` of shape () or (B,) to broadcast against ``x``.

    Args:
        c: () or (B,) coefficient.
        x: (B, *S) tensor.

    Returns:
        c as (B, 1, ..., 1) (or unchanged if scalar), cast to ``x``'s dtype and device.
    """
    c = torch.as_tensor(c, device=x.device)
    if c.ndim == 0:
        return c.to(x.dtype)
    if c.ndim != 1 or c.shape[0] != x.shape[0]:
        raise ValueError(
            f"per-sample times must have shape () or ({x.shape[0]},), got {tuple(c.shape)}"
        )
    return c.reshape((-1,) + (1,) * (x.ndim - 1)).to(x.dtype)

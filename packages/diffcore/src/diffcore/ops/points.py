"""Nearest neighbours and Chamfer distance between batches of padded point clouds.

Same semantics as pytorch3d (facebookresearch/pytorch3d: pytorch3d/ops/knn.py and
pytorch3d/loss/chamfer.py), which has no Linux wheels on PyPI: clouds are padded tensors
(B, P, D) with optional per-cloud `lengths`, distances are squared Euclidean (or L1 with
``norm=1``), and slots with no neighbour (padded query points, or fewer than K points in the
other cloud) hold index 0 and distance 0, as pytorch3d pads them. Ties go to the lower index.

The search runs without autograd; the returned distances are recomputed from the chosen indices
so they are differentiable with respect to both clouds (bit-identical to the search's values).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _dispatch
from ._dispatch import Backend
from ._reference import pairwise_distance
from ._validate import check_coordinates, check_int, check_lengths

__all__ = ["KNN", "chamfer_distance", "knn_gather", "knn_points"]

# eps of the cosine similarity between normals, as pytorch3d/loss/chamfer.py.
_COSINE_EPS = 1e-6
_NORMS = (1, 2)
_BATCH_REDUCTIONS = ("mean", "sum", None)
_POINT_REDUCTIONS = ("mean", "sum", "max", None)

ChamferTerm = Tensor | tuple[Tensor, Tensor]


class KNN(NamedTuple):
    """Result of `knn_points`; a named tuple so ``dists, idx, nn = knn_points(...)`` unpacks.

    Attributes:
        dists: (B, P1, K) distances (squared for norm=2), ascending; 0 in empty slots.
        idx: (B, P1, K) long indices into p2's clouds; 0 in empty slots.
        knn: (B, P1, K, D) the neighbours' coordinates if `return_nn`, else None.
    """

    dists: Tensor
    idx: Tensor
    knn: Tensor | None


def _check_pair(p1: Tensor, p2: Tensor, names: tuple[str, str]) -> None:
    a, b = names
    if p1.shape[0] != p2.shape[0] or p1.shape[2] != p2.shape[2]:
        raise ValueError(
            f"`{a}` and `{b}` must share batch size and point dimension, got "
            f"{tuple(p1.shape)} and {tuple(p2.shape)}."
        )
    if p1.device != p2.device or p1.dtype != p2.dtype:
        raise ValueError(
            f"`{a}` ({p1.dtype}, {p1.device}) and `{b}` ({p2.dtype}, {p2.device}) must share "
            "dtype and device."
        )


def _check_norm(norm: object) -> int:
    if norm not in _NORMS or isinstance(norm, bool):
        raise ValueError(f"`norm` must be 1 (L1) or 2 (squared L2), got {norm!r}.")
    return int(norm)


def knn_points(
    p1: Tensor,
    p2: Tensor,
    lengths1: Tensor | None = None,
    lengths2: Tensor | None = None,
    *,
    K: int = 1,
    norm: int = 2,
    return_nn: bool = False,
    return_sorted: bool = True,
    backend: Backend = "auto",
    memory_budget: int | None = None,
) -> KNN:
    """The K nearest points of p2 for every point of p1, cloud by cloud (pytorch3d `knn_points`).

    Args:
        p1: (B, P1, D) float32/float64 query clouds.
        p2: (B, P2, D) clouds searched, same dtype and device.
        lengths1: (B,) number of real points in each p1 cloud (the rest is padding), or None.
        lengths2: (B,) number of real points in each p2 cloud, or None.
        K: neighbours per point, >= 1.
        norm: 2 for squared Euclidean distances, 1 for L1 distances.
        return_nn: also gather the neighbours' coordinates (`KNN.knn`).
        return_sorted: kept for pytorch3d compatibility; results are always sorted by
            (distance, index), which is one valid unsorted order too.
        backend: "auto" (Triton on CUDA, torch otherwise), "torch" or "triton".
        memory_budget: bytes one block of the torch backend may use; None for the default.

    Returns:
        KNN(dists (B, P1, K), idx (B, P1, K) long, knn (B, P1, K, D) or None). Slots past
        lengths1[b] or past lengths2[b] neighbours hold idx 0 and dist 0.

    >>> p1 = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]])
    >>> p2 = torch.tensor([[[1.5, 0.0], [0.0, 1.0], [9.0, 9.0]]])
    >>> out = knn_points(p1, p2, K=2)
    >>> out.idx.tolist(), out.dists.tolist()
    ([[[1, 0], [0, 1]]], [[[1.0, 2.25], [0.25, 5.0]]])
    """
    p1 = check_coordinates(p1, "p1", 3)
    p2 = check_coordinates(p2, "p2", 3)
    _check_pair(p1, p2, ("p1", "p2"))
    K = check_int(K, "K", minimum=1)
    norm = _check_norm(norm)
    del return_sorted  # always sorted
    budget = _dispatch.check_memory_budget(memory_budget)
    chosen = _dispatch.choose_backend(backend, p1.device, k=K)
    b, n1, d = p1.shape
    n2 = p2.shape[1]
    lengths1 = check_lengths(lengths1, "lengths1", b, n1, p1.device)
    lengths2 = check_lengths(lengths2, "lengths2", b, n2, p1.device)

    # Flatten the batch: query (b, i) searches the flat points [b * P2, b * P2 + lengths2[b]);
    # padded queries get the empty range at its end, which keeps both bounds non-decreasing.
    start = torch.arange(b, device=p1.device) * n2
    stop = start + lengths2
    real = torch.arange(n1, device=p1.device)[None, :] < lengths1[:, None]  # (B, P1)
    lo = torch.where(real, start[:, None], stop[:, None]).reshape(-1)
    hi = stop[:, None].expand(b, n1).reshape(-1)
    q = p1.reshape(b * n1, d)
    x = p2.reshape(b * n2, d)
    _, flat_idx = _dispatch.knn_search(
        q.detach(),
        x.detach(),
        lo,
        hi,
        K,
        exclude=None,
        norm=norm,
        backend=chosen,
        memory_budget=budget,
    )
    found = flat_idx >= 0
    safe = flat_idx.clamp(min=0)
    near = x[safe] if x.shape[0] > 0 else x.new_zeros(b * n1, K, d)
    dists = pairwise_distance(q[:, None, :], near, norm)
    dists = torch.where(found, dists, torch.zeros((), dtype=dists.dtype, device=dists.device))
    row_start = start.repeat_interleave(n1)[:, None]
    idx = torch.where(found, safe - row_start, 0).reshape(b, n1, K)
    dists = dists.reshape(b, n1, K)
    nn = knn_gather(p2, idx, lengths2) if return_nn else None
    return KNN(dists=dists, idx=idx, knn=nn)


def knn_gather(x: Tensor, idx: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Gather per-cloud features by `knn_points` indices (pytorch3d `knn_gather`).

    Args:
        x: (B, M, U) features of the searched clouds.
        idx: (B, L, K) long indices in [0, M), as returned by `knn_points`.
        lengths: (B,) real points per cloud of `x`, or None; slots k >= lengths[b] give 0.

    Returns:
        out: (B, L, K, U) with out[b, l, k] = x[b, idx[b, l, k]].
    """
    if not isinstance(x, Tensor) or x.dim() != 3:
        raise ValueError(f"`x` must have shape (B, M, U), got {getattr(x, 'shape', type(x))}.")
    if not isinstance(idx, Tensor) or idx.dim() != 3 or idx.shape[0] != x.shape[0]:
        raise ValueError(
            f"`idx` must have shape ({x.shape[0]}, L, K) to match `x`, got "
            f"{getattr(idx, 'shape', type(idx))}."
        )
    if idx.dtype != torch.long:
        raise ValueError(f"`idx` must be torch.long, got {idx.dtype}.")
    b, m, u = x.shape
    _, n_l, k = idx.shape
    top = max(m, 1)  # empty clouds: knn_points pads with index 0, gathered as zeros
    if idx.numel() > 0 and (int(idx.min()) < 0 or int(idx.max()) >= top):
        raise ValueError(
            f"`idx` must lie in [0, {top}), got values in [{int(idx.min())}, {int(idx.max())}]."
        )
    lengths = check_lengths(lengths, "lengths", b, m, x.device)
    if m == 0:
        return x.new_zeros(b, n_l, k, u)
    out = x.gather(1, idx.reshape(b, n_l * k, 1).expand(b, n_l * k, u)).reshape(b, n_l, k, u)
    empty = torch.arange(k, device=x.device)[None, :] >= lengths[:, None]  # (B, K)
    return out.masked_fill(empty[:, None, :, None], 0.0)


def _one_direction(
    x: Tensor,
    y: Tensor,
    x_lengths: Tensor,
    y_lengths: Tensor,
    x_normals: Tensor | None,
    y_normals: Tensor | None,
    weights: Tensor | None,
    point_reduction: str | None,
    norm: int,
    abs_cosine: bool,
    backend: Backend,
    memory_budget: int,
) -> tuple[Tensor, Tensor | None]:
    """Chamfer terms from x to y: per point (B, P) or reduced over points (B,)."""
    b, n, _ = x.shape
    nn = knn_points(
        x, y, x_lengths, y_lengths, K=1, norm=norm, backend=backend, memory_budget=memory_budget
    )
    padded = torch.arange(n, device=x.device)[None, :] >= x_lengths[:, None]  # (B, P)
    term = nn.dists[..., 0]  # padded points already hold 0
    term_n: Tensor | None = None
    if x_normals is not None and y_normals is not None:
        near = knn_gather(y_normals, nn.idx, y_lengths)[..., 0, :]
        cos = F.cosine_similarity(x_normals, near, dim=2, eps=_COSINE_EPS)
        term_n = (1 - (cos.abs() if abs_cosine else cos)).masked_fill(padded, 0.0)
    if weights is not None:
        term = term * weights[:, None]
        term_n = None if term_n is None else term_n * weights[:, None]
    if point_reduction is None:
        return term, term_n
    if point_reduction == "max":
        return (term.amax(dim=1) if n > 0 else term.new_zeros(b)), None
    term = term.sum(dim=1)
    term_n = None if term_n is None else term_n.sum(dim=1)
    if point_reduction == "mean":
        count = x_lengths.clamp(min=1)
        term = term / count
        term_n = None if term_n is None else term_n / count
    return term, term_n


def chamfer_distance(
    x: Tensor,
    y: Tensor,
    x_lengths: Tensor | None = None,
    y_lengths: Tensor | None = None,
    x_normals: Tensor | None = None,
    y_normals: Tensor | None = None,
    *,
    weights: Tensor | None = None,
    batch_reduction: str | None = "mean",
    point_reduction: str | None = "mean",
    norm: int = 2,
    single_directional: bool = False,
    abs_cosine: bool = True,
    backend: Backend = "auto",
    memory_budget: int | None = None,
) -> tuple[ChamferTerm, ChamferTerm | None]:
    """Chamfer distance between batches of point clouds (pytorch3d `chamfer_distance`).

    For each point of x, the squared distance (L1 with ``norm=1``) to its nearest point in y,
    reduced over points; plus the same from y to x unless `single_directional`. With normals,
    also 1 - |cos| between each point's normal and its nearest neighbour's (1 - cos if not
    `abs_cosine`).

    Args:
        x: (B, P1, D) float32/float64 clouds.
        y: (B, P2, D) clouds, same dtype and device.
        x_lengths: (B,) real points per x cloud, or None.
        y_lengths: (B,) real points per y cloud, or None.
        x_normals: (B, P1, D) normals of x, or None.
        y_normals: (B, P2, D) normals of y, or None.
        weights: (B,) non-negative weights of the clouds, or None.
        batch_reduction: "mean", "sum" or None. "mean" divides by B (by sum(weights) when
            weights are given and not all zero).
        point_reduction: "mean" (over each cloud's real points), "sum", "max" (Hausdorff-like,
            no normals) or None (per-point terms; then batch_reduction must be None).
        norm: 2 (squared Euclidean) or 1 (L1).
        single_directional: only the x -> y term.
        abs_cosine: compare normals up to sign.
        backend: "auto" (Triton on CUDA, torch otherwise), "torch" or "triton".
        memory_budget: bytes one block of the torch backend may use; None for the default.

    Returns:
        loss: () with a batch reduction, (B,) without; with ``point_reduction=None`` the
            per-point terms (B, P1) (and (B, P2) as a pair unless single-directional).
        loss_normals: the same for normals, or None without both normals. (pytorch3d returns
            a zero tensor there; with all-zero weights it also returns oddly shaped zeros,
            where this returns zeros shaped like the usual result.)

    >>> x = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])
    >>> y = torch.tensor([[[0.0, 0.5]]])
    >>> loss, _ = chamfer_distance(x, y)
    >>> round(float(loss), 4)  # x->y: (0.25 + 1.25) / 2, y->x: 0.25
    1.0
    """
    if batch_reduction not in _BATCH_REDUCTIONS:
        raise ValueError(
            f"`batch_reduction` must be 'mean', 'sum' or None, got {batch_reduction!r}."
        )
    if point_reduction not in _POINT_REDUCTIONS:
        raise ValueError(
            f"`point_reduction` must be 'mean', 'sum', 'max' or None, got {point_reduction!r}."
        )
    if point_reduction is None and batch_reduction is not None:
        raise ValueError(
            f"`batch_reduction` must be None when `point_reduction` is None, got "
            f"{batch_reduction!r}."
        )
    norm = _check_norm(norm)
    if point_reduction == "max" and (x_normals is not None or y_normals is not None):
        raise ValueError("normals cannot be used with point_reduction='max'; pass None for them.")
    x = check_coordinates(x, "x", 3)
    y = check_coordinates(y, "y", 3)
    _check_pair(x, y, ("x", "y"))
    b = x.shape[0]
    x_lengths = check_lengths(x_lengths, "x_lengths", b, x.shape[1], x.device)
    y_lengths = check_lengths(y_lengths, "y_lengths", b, y.shape[1], x.device)
    for name, normals, points in (("x_normals", x_normals, x), ("y_normals", y_normals, y)):
        if normals is not None and (
            not isinstance(normals, Tensor) or normals.shape != points.shape
        ):
            raise ValueError(
                f"`{name}` must have the shape of its points {tuple(points.shape)}, got "
                f"{getattr(normals, 'shape', type(normals))}."
            )
    if weights is not None:
        if not isinstance(weights, Tensor) or weights.shape != (b,):
            raise ValueError(
                f"`weights` must have shape ({b},), got {getattr(weights, 'shape', weights)}."
            )
        if bool((weights < 0).any()):
            raise ValueError("`weights` must be non-negative.")
    budget = _dispatch.check_memory_budget(memory_budget)

    def direction(
        a: Tensor, c: Tensor, al: Tensor, cl: Tensor, an: Tensor | None, cn: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        return _one_direction(
            a, c, al, cl, an, cn, weights, point_reduction, norm, abs_cosine, backend, budget
        )

    cham_x, cham_nx = direction(x, y, x_lengths, y_lengths, x_normals, y_normals)
    loss: ChamferTerm
    loss_n: ChamferTerm | None
    if single_directional:
        loss, loss_n = cham_x, cham_nx
    else:
        cham_y, cham_ny = direction(y, x, y_lengths, x_lengths, y_normals, x_normals)
        if point_reduction is None:
            loss = (cham_x, cham_y)
            loss_n = None if cham_nx is None or cham_ny is None else (cham_nx, cham_ny)
        elif point_reduction == "max":
            loss, loss_n = torch.maximum(cham_x, cham_y), None
        else:
            loss = cham_x + cham_y
            loss_n = None if cham_nx is None or cham_ny is None else cham_nx + cham_ny
    if batch_reduction is None:
        return loss, loss_n
    if not isinstance(loss, Tensor) or isinstance(loss_n, tuple):  # excluded by the checks
        raise ValueError("a batch reduction needs a point reduction.")
    divisor: Tensor | float = 1.0
    if batch_reduction == "mean":
        if weights is None:
            divisor = float(max(b, 1))
        elif bool(weights.sum() > 0):
            divisor = weights.sum()
    total = loss.sum() / divisor
    total_n = None if loss_n is None else loss_n.sum() / divisor
    return total, total_n

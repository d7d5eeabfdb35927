r"""What a network predicts, and the one place where predictions are converted.

For a Gaussian process ``x = alpha x_0 + sigma eps`` every prediction is a reparameterisation of
the pair ``(x_0, eps)``:

==========  ===========================================  ======================================
kind        definition                                   recovering (x_0, eps) from output y
==========  ===========================================  ======================================
"eps"       eps                                          x_0 = (x - sigma y) / alpha
"x0"        x_0                                          eps = (x - alpha y) / sigma
"v"         alpha eps - sigma x_0 (Salimans & Ho 2022)   x_0 = (alpha x - sigma y) / (a^2 + s^2)
"score"     grad log p_t(x) = -eps / sigma               eps = -sigma y
"velocity"  dx/dt = alpha' x_0 + sigma' eps              2x2 solve with x = alpha x_0 + sigma eps
==========  ===========================================  ======================================

A :class:`Denoiser` wraps any ``net(x, t, **kw)`` with its prediction kind and process (or process
tree, for tuple/dict states); calling it returns a :class:`Prediction` from which a sampler reads
whichever kind it needs, for one network evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from .processes.gaussian import GaussianProcess
from .tree import Tree, expand_like, tree_map

PredictionKind = Literal["eps", "x0", "v", "score", "velocity"]
KINDS: tuple[str, ...] = ("eps", "x0", "v", "score", "velocity")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown prediction kind {kind!r}; expected one of {', '.join(KINDS)}")


def _coeffs(
    process: GaussianProcess, t: Tensor, x: Tensor, *, derivatives: bool = False
) -> tuple[Tensor, ...]:
    """(alpha, sigma) at t, plus (alpha', sigma') when ``derivatives``, shaped to broadcast."""
    if not isinstance(process, GaussianProcess):
        raise TypeError(
            f"prediction conversion needs a GaussianProcess, got {type(process).__name__}"
        )
    t = torch.as_tensor(t, device=x.device)
    if not t.is_floating_point():
        t = t.to(torch.float64)
    out: tuple[Tensor, ...] = (expand_like(process.alpha(t), x), expand_like(process.sigma(t), x))
    if derivatives:
        out += (expand_like(process.d_alpha(t), x), expand_like(process.d_sigma(t), x))
    return out


def to_x0_eps(
    y: Tensor, x: Tensor, t: Tensor, process: GaussianProcess, kind: str
) -> tuple[Tensor, Tensor]:
    """Convert a prediction ``y`` of ``kind`` at ``(x, t)`` into ``(x_0, eps)``.

    Args:
        y: (B, *S) network output.
        x: (B, *S) noisy state.
        t: () or (B,) time.
        process: the leaf's Gaussian process.
        kind: one of ``"eps"``, ``"x0"``, ``"v"``, ``"score"``, ``"velocity"``.

    Returns:
        (x0, eps), both (B, *S).
    """
    _check_kind(kind)
    if kind == "velocity":
        a, s, da, ds = _coeffs(process, t, x, derivatives=True)
        det = ds * a - s * da  # solve [[a, s], [da, ds]] (x0, eps) = (x, y)
        return (ds * x - s * y) / det, (a * y - da * x) / det
    a, s = _coeffs(process, t, x)
    if kind == "eps":
        return (x - s * y) / a, y
    if kind == "x0":
        return y, (x - a * y) / s
    if kind == "v":
        norm = a**2 + s**2
        return (a * x - s * y) / norm, (s * x + a * y) / norm
    eps = -s * y  # score
    return (x - s * eps) / a, eps


def from_x0_eps(x0: Tensor, eps: Tensor, t: Tensor, process: GaussianProcess, kind: str) -> Tensor:
    """The prediction of ``kind`` that corresponds to ``(x_0, eps)`` at time ``t``."""
    _check_kind(kind)
    if kind == "x0":
        return x0
    if kind == "eps":
        return eps
    if kind == "velocity":
        _, _, da, ds = _coeffs(process, t, x0, derivatives=True)
        return da * x0 + ds * eps
    a, s = _coeffs(process, t, x0)
    if kind == "v":
        return a * eps - s * x0
    return -eps / s  # score


def convert(
    y: Tensor, x: Tensor, t: Tensor, process: GaussianProcess, *, source: str, target: str
) -> Tensor:
    """Convert a prediction from one kind to another.

    Convert a prediction between kinds, e.g. ``convert(eps, x, t, vp, source="eps",
    target="v")``.
    """
    if source == target:
        _check_kind(source)
        return y
    x0, eps = to_x0_eps(y, x, t, process, source)
    return from_x0_eps(x0, eps, t, process, target)


@dataclass
class Prediction:
    """One network evaluation at ``(x, t)``, readable as any kind (conversions are cached).

    Attributes:
        raw: the network output (a tree like ``x``).
        x: the state it was evaluated at.
        t: () or (B,) time.
        process: process tree matching ``x``.
        kind: prediction kind of ``raw`` (a string, or a tree of strings per leaf).
    """

    raw: Tree
    x: Tree
    t: Tensor
    process: Any
    kind: Any
    _cache: dict[str, Tree] = field(default_factory=dict, repr=False)

    def as_kind(self, target: str) -> Tree:
        """The prediction as ``target`` kind, leaf by leaf."""
        if target not in self._cache:
            self._cache[target] = tree_map(
                lambda y, x, p, k: p.project(convert(y, x, self.t, p, source=k, target=target)),
                self.raw,
                self.x,
                self.process,
                self.kind,
            )
        return self._cache[target]

    @property
    def x0(self) -> Tree:
        """Data prediction E[x_0 | x_t]."""
        return self.as_kind("x0")

    @property
    def eps(self) -> Tree:
        """Noise prediction E[eps | x_t]."""
        return self.as_kind("eps")

    @property
    def score(self) -> Tree:
        """Score grad log p_t(x_t)."""
        return self.as_kind("score")

    @property
    def velocity(self) -> Tree:
        """Probability-flow ODE velocity dx/dt."""
        return self.as_kind("velocity")

    @property
    def v(self) -> Tree:
        """v-prediction alpha eps - sigma x_0."""
        return self.as_kind("v")


class Denoiser:
    """A network plus what it predicts, under which process.

    Args:
        net: ``net(x, t, **kwargs) -> output`` with x a tensor or tree and t of shape (B,).
        prediction: the kind ``net`` outputs (or a tree of kinds, one per state leaf).
        process: the process (or process tree) the network was trained with.
        time_fn: optional map from diffcore time to the network's time input (e.g. a
            DiscreteVP's step index ``t * N - 1``).
        kwargs: extra keyword arguments passed to every call (conditions, masks).

    Calling ``denoiser(x, t)`` returns a :class:`Prediction`; ``t`` may be a scalar (broadcast
    to the batch) or (B,) per-sample times. ``nfe`` counts network evaluations.
    """

    def __init__(
        self,
        net: Callable[..., Tree],
        prediction: Any,
        process: Any,
        *,
        time_fn: Callable[[Tensor], Tensor] | None = None,
        **kwargs: Any,
    ) -> None:
        tree_map(_check_kind, prediction)
        self.net = net
        self.prediction = prediction
        self.process = process
        self.time_fn = time_fn
        self.kwargs = kwargs
        self.nfe = 0

    def __call__(self, x: Tree, t: Tensor | float) -> Prediction:
        """Evaluate the network once at ``(x, t)``."""
        from .tree import batch_size, first_leaf

        leaf = first_leaf(x)
        t = torch.as_tensor(t, device=leaf.device)
        if not t.is_floating_point():
            t = t.to(torch.float64)
        t_batch = t.expand(batch_size(x)) if t.ndim == 0 else t
        t_net = self.time_fn(t_batch) if self.time_fn is not None else t_batch
        dtype = leaf.dtype if leaf.is_floating_point() else torch.get_default_dtype()
        raw = self.net(x, t_net.to(dtype), **self.kwargs)
        self.nfe += 1
        return Prediction(raw=raw, x=x, t=t, process=self.process, kind=self.prediction)

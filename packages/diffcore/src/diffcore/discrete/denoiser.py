"""A network plus its discrete process: ``(x_t, t) -> p(x_0 | x_t)`` with the parameterisation.

The discrete counterpart of :class:`diffcore.predictions.Denoiser`. A discrete network outputs
logits over the clean token at every position; there is nothing to convert between, so instead
of a ``Prediction`` the denoiser returns the (B, L, V) distribution of ``x_0``, with the
process's parameterisation applied (masked diffusion's SUBS: no mask, unmasked tokens carried
over). Samplers and objectives take either a :class:`DiscreteDenoiser` or a bare network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .processes import DiscreteProcess

__all__ = ["DiscreteDenoiser", "as_denoiser"]


class DiscreteDenoiser:
    """Wrap ``net(x, t, **kwargs) -> logits`` for a discrete process.

    Args:
        net: maps (B, L) token ids (or (B, L, K) soft one-hot states, for relaxed sampling) and
            (B,) float times to (B, L, V) logits of the clean token ((B, L, V + 1) is accepted
            for the masked process; the mask column is dropped).
        process: the :class:`~diffcore.discrete.processes.DiscreteProcess` it was trained for.
        time_fn: optional map from diffcore time in [0, 1] to the network's time input.
        kwargs: extra keyword arguments passed to every call (conditions).

    ``nfe`` counts network evaluations (read by :func:`diffcore.samplers.sample`).
    """

    def __init__(
        self,
        net: Callable[..., Tensor],
        process: DiscreteProcess,
        *,
        time_fn: Callable[[Tensor], Tensor] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(process, DiscreteProcess):
            raise TypeError(
                f"`process` must be a DiscreteProcess (MaskedProcess, UniformProcess), "
                f"got {type(process).__name__}."
            )
        self.net = net
        self.process = process
        self.time_fn = time_fn
        self.kwargs = kwargs
        self.nfe = 0

    def logits(self, x: Tensor, t: Tensor | float) -> Tensor:
        """The raw network output at ``(x, t)``: (B, L, V) (or V + 1) logits."""
        if x.ndim not in (2, 3):
            raise ValueError(
                f"`x` must be (B, L) token ids or (B, L, K) soft states, got {tuple(x.shape)}."
            )
        t = self.process.check_time(t).to(x.device)
        batch = x.shape[0]
        if t.ndim == 0:
            t = t.expand(batch)
        elif t.shape != (batch,):
            raise ValueError(
                f"`t` must be a scalar or have shape (B,) = ({batch},), got {tuple(t.shape)}."
            )
        if self.time_fn is not None:
            t = self.time_fn(t)
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        out = self.net(x, t.to(dtype), **self.kwargs)
        self.nfe += 1
        return out

    def __call__(self, x: Tensor, t: Tensor | float) -> Tensor:
        """``log p(x_0 | x_t)``: (B, L) states and () or (B,) times -> (B, L, V) log-probs."""
        x = self.process.check_tokens(x)
        return self.process.x0_log_probs(self.logits(x, t), x)

    def probs(self, x: Tensor, t: Tensor | float) -> Tensor:
        """``p(x_0 | x_t)``: (B, L, V) probabilities; ``x`` may be (B, L, K) soft states."""
        if not x.is_floating_point():
            x = self.process.check_tokens(x)
        return self.process.x0_probs(self.logits(x, t), x)


def as_denoiser(model: Any, process: DiscreteProcess | None = None) -> DiscreteDenoiser:
    """``model`` if it is a :class:`DiscreteDenoiser`, else ``DiscreteDenoiser(model, process)``.

    Raises:
        ValueError: a bare network without a process, or a denoiser built for another process.
    """
    if isinstance(model, DiscreteDenoiser):
        if process is not None and model.process != process:
            raise ValueError(
                f"the denoiser was built for {model.process} but this objective uses {process}."
            )
        return model
    if process is None:
        raise ValueError(
            "a bare network needs its process: wrap it as DiscreteDenoiser(net, process)."
        )
    return DiscreteDenoiser(model, process)

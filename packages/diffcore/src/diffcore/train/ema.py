"""Exponential moving average of model parameters.

After each optimizer step, ``shadow <- d * shadow + (1 - d) * param`` for every floating-point
parameter (Polyak & Juditsky 1992; used for diffusion sampling since Song & Ermon 2020,
arXiv:2006.09011, sec. 3.5, and DDPM, Ho et al. 2020, app. B). The decay ``d`` may be warmed
up so early averages are not dominated by the random initialisation:

* ``"tf"``: ``d_n = min(decay, (1 + n) / (10 + n))`` (TensorFlow's
  ``tf.train.ExponentialMovingAverage`` with ``num_updates``; used by latent diffusion);
* ``"power"``: ``d_n = min(decay, 1 - (1 + n / inv_gamma) ** -power)`` (k-diffusion's
  ``EMAWarmup``, crowsonkb/k-diffusion: k_diffusion/utils.py; power 2/3 for runs of about a
  million steps, 3/4 for shorter ones);

where ``n`` counts the updates made before this one (so the first "power" update copies the
parameters). Buffers are not averaged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = ["EMA"]

EMAWarmup = Literal["none", "tf", "power"]
_TF_WARMUP_OFFSET = 10  # tf.train.ExponentialMovingAverage: (1 + n) / (10 + n)
_WARMUPS = ("none", "tf", "power")


class EMA:
    """Moving average of a model's floating-point parameters.

    Args:
        model: the model whose parameters are averaged; the shadow starts as a copy.
        decay: the decay ``d`` in [0, 1] (the cap when warmed up).
        warmup: ``"none"``, ``"tf"`` or ``"power"`` (see the module docstring).
        inv_gamma: time scale of the "power" warmup.
        power: exponent of the "power" warmup.

    >>> net = nn.Linear(2, 2)
    >>> ema = EMA(net, decay=0.999)
    >>> ema.update(net)
    >>> ema.num_updates
    1
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        decay: float = 0.9999,
        warmup: EMAWarmup = "none",
        inv_gamma: float = 1.0,
        power: float = 2 / 3,
    ) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"`decay` must be in [0, 1], got {decay}.")
        if warmup not in _WARMUPS:
            raise ValueError(f"`warmup` must be one of {_WARMUPS}, got {warmup!r}.")
        if inv_gamma <= 0 or power <= 0:
            raise ValueError(
                f"`inv_gamma` and `power` must be > 0, got inv_gamma={inv_gamma}, power={power}."
            )
        self.decay = decay
        self.warmup: EMAWarmup = warmup
        self.inv_gamma = inv_gamma
        self.power = power
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {name: p.detach().clone() for name, p in _averaged(model)}

    def decay_at(self, n: int) -> float:
        """Decay used by the update made after ``n`` earlier updates."""
        if self.warmup == "tf":
            return min(self.decay, (1 + n) / (_TF_WARMUP_OFFSET + n))
        if self.warmup == "power":
            return min(self.decay, 1 - (1 + n / self.inv_gamma) ** -self.power)
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current parameters of `model` into the average (call after each step).

        Args:
            model: the model the EMA was built from (same parameter names and shapes).
        """
        d = self.decay_at(self.num_updates)
        for name, p in self._matched(model):
            self.shadow[name].lerp_(p.detach().to(self.shadow[name].dtype), 1 - d)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> dict[str, Tensor]:
        """Write the averaged parameters into `model`.

        Args:
            model: receives the averages in place.

        Returns:
            A backup of the replaced parameters, for `restore`.
        """
        backup = {}
        for name, p in self._matched(model):
            backup[name] = p.detach().clone()
            p.copy_(self.shadow[name])
        return backup

    @torch.no_grad()
    def restore(self, model: nn.Module, backup: Mapping[str, Tensor]) -> None:
        """Put back the parameters that `copy_to` replaced.

        Args:
            model: the model given to `copy_to`.
            backup: what `copy_to` returned.
        """
        params = dict(model.named_parameters())
        for name, value in backup.items():
            if name not in params:
                raise KeyError(f"`backup` has parameter {name!r}, which `model` lacks.")
            params[name].copy_(value)

    @contextmanager
    def applied_to(self, model: nn.Module) -> Iterator[nn.Module]:
        """Context in which `model` holds the averaged parameters; restored on exit.

        >>> net = nn.Linear(2, 2); ema = EMA(net)
        >>> with ema.applied_to(net):
        ...     pass
        """
        backup = self.copy_to(model)
        try:
            yield model
        finally:
            self.restore(model, backup)

    def state_dict(self) -> dict[str, Any]:
        """Settings, update count and shadow tensors (the tensors are not copied)."""
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "inv_gamma": self.inv_gamma,
            "power": self.power,
            "num_updates": self.num_updates,
            "shadow": dict(self.shadow),
        }

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the update count and the shadow tensors (settings are taken from the state).

        Args:
            state: what `state_dict` returned, possibly after a round trip through a
                checkpoint.
        """
        shadow = state.get("shadow")
        if not isinstance(shadow, Mapping):
            raise ValueError("EMA state has no 'shadow' mapping of tensors.")
        missing = sorted(set(self.shadow) - set(shadow))
        unexpected = sorted(set(shadow) - set(self.shadow))
        if missing or unexpected:
            raise ValueError(
                f"EMA state does not match the model: missing {missing}, unexpected {unexpected}."
            )
        for name, value in shadow.items():
            if tuple(value.shape) != tuple(self.shadow[name].shape):
                raise ValueError(
                    f"EMA shadow {name!r} has shape {tuple(value.shape)}, the model's "
                    f"parameter has {tuple(self.shadow[name].shape)}."
                )
        for name, value in shadow.items():
            self.shadow[name].copy_(value)
        warmup = state.get("warmup", self.warmup)
        if warmup not in _WARMUPS:
            raise ValueError(f"EMA state has warmup {warmup!r}; expected one of {_WARMUPS}.")
        self.num_updates = int(state["num_updates"])
        self.decay = float(state.get("decay", self.decay))
        self.warmup = warmup
        self.inv_gamma = float(state.get("inv_gamma", self.inv_gamma))
        self.power = float(state.get("power", self.power))

    def _matched(self, model: nn.Module) -> Iterator[tuple[str, Tensor]]:
        params = dict(_averaged(model))
        if params.keys() != self.shadow.keys():
            missing = sorted(set(self.shadow) - set(params))
            extra = sorted(set(params) - set(self.shadow))
            raise ValueError(
                f"`model` does not match the EMA: missing {missing}, unexpected {extra}; "
                "pass the model the EMA was built from."
            )
        yield from params.items()


def _averaged(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    for name, p in model.named_parameters():
        if p.dtype.is_floating_point or p.dtype.is_complex:
            yield name, p

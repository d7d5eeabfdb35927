"""The face every guidance wrapper shows the samplers: the wrapped model's process and NFE."""

from __future__ import annotations

from typing import Any


class WrapsModel:
    """Mixin for wrappers with a ``model`` attribute: forwards ``process`` and ``nfe``.

    A step rule reads ``model.process`` for its per-leaf coefficients and the sampling loop
    reads ``model.nfe`` to count network evaluations; a wrapper that only changes predictions
    passes both through (extra evaluations, e.g. a classifier's, are not counted).
    """

    model: Any

    @property
    def process(self) -> Any:
        """The wrapped model's process (tree)."""
        return self.model.process

    @property
    def nfe(self) -> int:
        """Network evaluations of the wrapped model."""
        return self.model.nfe

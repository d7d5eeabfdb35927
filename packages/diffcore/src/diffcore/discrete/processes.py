r"""Masked (absorbing) and uniform continuous-time Markov chain processes over token sequences.

States are LongTensors of token ids, shape (B, L), with values in ``[0, V)`` (plus the mask id
``V`` for the masked process). Every position follows the same CTMC independently, with rate
matrix ``Q_t = beta(t) Q`` where ``beta`` comes from the :mod:`schedule
<diffcore.discrete.schedules>` and ``Q`` is

* masked (D3PM's absorbing state, Austin et al. 2021, arXiv:2107.03006; MDLM):
  ``Q[i, m] = 1, Q[i, i] = -1`` for ``i != m`` and a zero row for the mask ``m = V``;
* uniform (D3PM; UDLM, Schiff et al. 2024, arXiv:2412.10193): ``Q = 1 1^T / V - I``.

Both matrices satisfy ``exp(c Q) = e^{-c} I + (1 - e^{-c}) 1 pi^T`` with ``pi`` the mask or the
uniform vector, so with ``r = alpha(t) / alpha(s)`` the transition probabilities are

    masked:   P(s -> t)[i, j] = r [i = j] + (1 - r) [j = m]        (row m: [j = m])
    uniform:  P(s -> t)[i, j] = r [i = j] + (1 - r) / V

and ``q(x_t | x_0)`` is the row of ``P(0 -> t)``. Nothing here forms a (V, V) matrix except the
explicit ``transition_matrix`` / ``rate_matrix`` (meant for small V and for tests); posteriors
and reverse rates use the closed forms, so they cost O(B L V).

Index letters: B batch, L sequence length, V vocabulary, K = number of states (V + 1 masked,
V uniform).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..processes.base import Process
from .schedules import DiscreteSchedule, LogLinearSchedule

__all__ = ["DiscreteProcess", "MaskedProcess", "UniformProcess"]

_TINY = 1e-30  # guards 0/0 where a coefficient vanishes (alpha = 1 at t = 0)


def _col(c: Tensor, ndim: int, like: Tensor) -> Tensor:
    """A () or (B,) coefficient reshaped to (B, 1, ...) for an ``ndim``-dim tensor like ``like``."""
    c = c.to(device=like.device, dtype=like.dtype)
    return c if c.ndim == 0 else c.reshape((-1,) + (1,) * (ndim - 1))


def _prob_dtype(t: Tensor) -> torch.dtype:
    return t.dtype if t.is_floating_point() else torch.float64


@dataclass(frozen=True, kw_only=True)
class DiscreteProcess(Process):
    """A per-position CTMC over a vocabulary of ``vocab_size`` tokens; t in [0, 1].

    Attributes:
        vocab_size: V, the number of clean tokens.
        schedule: the noise schedule ``alpha(t)``.
    """

    vocab_size: int
    schedule: DiscreteSchedule = field(default_factory=LogLinearSchedule)

    def __post_init__(self) -> None:
        if not isinstance(self.vocab_size, int) or self.vocab_size < 2:
            raise ValueError(f"`vocab_size` must be an int >= 2, got {self.vocab_size!r}.")

    @property
    def t_min(self) -> float:  # noqa: D102
        return 0.0

    @property
    def t_max(self) -> float:  # noqa: D102
        return 1.0

    @property
    def num_states(self) -> int:
        """K: V + 1 for the masked process (the mask is a state), V for the uniform one."""
        raise NotImplementedError

    def check_time(self, t: Any) -> Tensor:
        """``t`` as a tensor in [0, 1] (python numbers become float64); raises otherwise."""
        if not isinstance(t, Tensor):
            t = torch.tensor(t, dtype=torch.float64)
        return super().check_time(t)

    # ------------------------------------------------------------------ schedule
    def alpha(self, t: Tensor | float) -> Tensor:
        """Probability that a token is still clean at t; shape of ``t``."""
        return self.schedule.alpha(self.check_time(t))

    def rate(self, t: Tensor | float) -> Tensor:
        """Forward rate ``beta(t) = -alpha'(t) / alpha(t)``; shape of ``t``."""
        return self.schedule.rate(self.check_time(t))

    # ------------------------------------------------------------------ checks
    def check_tokens(self, x: Tensor, name: str = "x", *, allow_mask: bool = True) -> Tensor:
        """Raise unless ``x`` is a (B, L) integer tensor of valid state ids; return it.

        Args:
            x: (B, L) token ids.
            name: the argument's name, for the error message.
            allow_mask: whether the mask id V is allowed (states) or not (clean data).
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"`{name}` must be a LongTensor of token ids, got {type(x).__name__}.")
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise TypeError(
                f"`{name}` must hold integer token ids (torch.long), got {x.dtype}; "
                "use x.argmax(-1) for one-hot or probability tensors."
            )
        if x.ndim != 2:
            raise ValueError(f"`{name}` must have shape (B, L), got {tuple(x.shape)}.")
        hi = self.num_states if allow_mask else self.vocab_size
        if x.numel() and bool(((x < 0) | (x >= hi)).any()):
            what = "state ids" if allow_mask else "clean token ids (the mask id is not data)"
            raise ValueError(
                f"`{name}` must hold {what} in [0, {hi - 1}] for {type(self).__name__} "
                f"(vocab_size={self.vocab_size}), got values in "
                f"[{int(x.min())}, {int(x.max())}]."
            )
        return x.long()

    def _check_batch_time(self, t: Tensor | float, batch: int, name: str = "t") -> Tensor:
        t = self.check_time(t)
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != batch):
            raise ValueError(
                f"`{name}` must be a scalar or have shape (B,) = ({batch},), got {tuple(t.shape)}."
            )
        return t

    def _check_x0_probs(self, x0_probs: Tensor, x: Tensor) -> None:
        want = (*x.shape[:2], self.vocab_size)
        if tuple(x0_probs.shape) != want:
            raise ValueError(
                f"`x0_probs` must have shape (B, L, V) = {want}, got {tuple(x0_probs.shape)}."
            )

    # ------------------------------------------------------------------ forward process
    def transition_probs(self, x_s: Tensor, s: Tensor | float, t: Tensor | float) -> Tensor:
        """Rows ``P(s -> t)[x_s, :]``: the distribution of ``x_t`` given ``x_s``.

        Args:
            x_s: (B, L) states at time s.
            s: () or (B,) earlier times.
            t: () or (B,) later times, ``t >= s``.

        Returns:
            (B, L, K) probabilities, in the dtype of ``t`` (float64 for integer times).
        """
        x_s = self.check_tokens(x_s, "x_s")
        s = self._check_batch_time(s, x_s.shape[0], "s")
        t = self._check_batch_time(t, x_s.shape[0], "t")
        if bool((t < s).any()):
            raise ValueError("`t` must be >= `s`: transitions run forward in time.")
        dtype = _prob_dtype(t)
        r = (self.schedule.alpha(t) / self.schedule.alpha(s)).to(dtype)
        onehot = torch.nn.functional.one_hot(x_s, self.num_states).to(dtype)
        return self._rows(onehot, _col(r, 3, onehot))

    def marginal_probs(self, x0: Tensor, t: Tensor | float) -> Tensor:
        """``q(x_t | x_0)`` for every position: (B, L) clean tokens -> (B, L, K) probabilities."""
        x0 = self.check_tokens(x0, "x0", allow_mask=False)
        t = self.check_time(t)
        return self.transition_probs(x0, torch.zeros_like(t), t)

    def transition_matrix(self, s: Tensor | float, t: Tensor | float) -> Tensor:
        """The dense transition matrix ``P(s -> t)``, rows summing to 1.

        Args:
            s: () or (B,) earlier times.
            t: () or (B,) later times.

        Returns:
            (K, K), or (B, K, K) for per-sample times; ``[i, j] = q(x_t = j | x_s = i)``.
        """
        s, t = self.check_time(s), self.check_time(t)
        if bool((t < s).any()):
            raise ValueError("`t` must be >= `s`: transitions run forward in time.")
        dtype = _prob_dtype(t)
        r = (self.schedule.alpha(t) / self.schedule.alpha(s)).to(dtype)
        eye = torch.eye(self.num_states, dtype=dtype, device=t.device)
        if r.ndim:
            eye = eye.expand(r.shape[0], -1, -1)
        return self._rows(eye, _col(r, 3, eye) if r.ndim else r)

    def rate_matrix(self, t: Tensor | float) -> Tensor:
        """The forward generator ``Q_t = beta(t) Q``: off-diagonal >= 0, rows summing to 0.

        Args:
            t: () or (B,) times.

        Returns:
            (K, K) or (B, K, K); ``[i, j]`` is the jump rate from state i to state j.
        """
        t = self.check_time(t)
        dtype = _prob_dtype(t)
        eye = torch.eye(self.num_states, dtype=dtype, device=t.device)
        gen = self._rows(eye, torch.zeros((), dtype=dtype)) - eye  # 1 pi^T - I (mask row 0)
        beta = self.schedule.rate(t).to(dtype)
        return beta[..., None, None] * gen

    def _rows(self, onehot: Tensor, r: Tensor) -> Tensor:
        """``r onehot + (1 - r) pi`` row-wise for (..., K) one-hot rows."""
        raise NotImplementedError

    def sample_marginal(
        self, x0: Tensor, t: Tensor | float, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw ``x_t ~ q(x_t | x_0)`` position by position.

        Args:
            x0: (B, L) clean tokens.
            t: () or (B,) times.
            generator: source of the corruption.

        Returns:
            ``(x_t, corrupted)``: the (B, L) noisy tokens and the (B, L) bool mask of the
            positions that were corrupted (masked, or redrawn uniformly: a redraw may land on
            the same token).
        """
        x0 = self.check_tokens(x0, "x0", allow_mask=False)
        t = self._check_batch_time(t, x0.shape[0])
        alpha = self.schedule.alpha(t.to(torch.float64))
        u = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=torch.float64)
        corrupted = u >= _col(alpha, 2, u)
        return torch.where(corrupted, self._noise_tokens(x0, generator), x0), corrupted

    def _noise_tokens(self, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def prior_probs(self, like: Tensor) -> Tensor:
        """The prior (t = 1 limit) of one position as a (K,) probability vector."""
        eye = torch.eye(self.num_states, dtype=torch.float64, device=like.device)
        return self._rows(eye[0], torch.zeros((), dtype=torch.float64))

    # ------------------------------------------------------------------ reverse process
    def x0_probs(self, raw: Tensor, x: Tensor) -> Tensor:
        """Network output -> probabilities of the clean token, (B, L, V).

        Args:
            raw: (B, L, V) logits (or (B, L, V + 1) for the masked process, whose mask column
                is ignored: the SUBS "zero masking probability").
            x: (B, L) current states, or (B, L, K) soft one-hot states (relaxed sampling).

        Returns:
            (B, L, V) probabilities of ``x_0``; a softmax of the logits, with the process's
            parameterisation applied (masked: unmasked tokens carried over).
        """
        return self._parameterise(raw, x).softmax(-1)

    def x0_log_probs(self, raw: Tensor, x: Tensor) -> Tensor:
        """Log of :meth:`x0_probs` for (B, L) integer states: (B, L, V), entries may be -inf."""
        return self._parameterise(raw, x).log_softmax(-1)

    def _parameterise(self, raw: Tensor, x: Tensor) -> Tensor:
        if raw.ndim != 3 or raw.shape[:2] != x.shape[:2] or raw.shape[-1] != self.vocab_size:
            raise ValueError(
                f"the network output must have shape (B, L, V) = "
                f"{(*x.shape[:2], self.vocab_size)} for {type(self).__name__}, "
                f"got {tuple(raw.shape)}."
            )
        if x.is_floating_point():
            raise ValueError(
                f"soft (one-hot) states are only supported by MaskedProcess, not "
                f"{type(self).__name__}."
            )
        return raw

    def posterior_probs(
        self, x_t: Tensor, x0_probs: Tensor, s: Tensor | float, t: Tensor | float
    ) -> Tensor:
        """``p(x_s | x_t) = sum_{x0} p(x0 | x_t) q(x_s | x_t, x0)`` position by position.

        The exact posterior of the forward process, averaged over the predicted clean token.
        When ``x0_probs`` are the true per-position conditionals this is the true per-position
        reverse marginal (D3PM's ancestral step, Austin et al. 2021, with the x0-parameterised
        average). At ``s = 0`` it returns ``x0_probs``.

        Args:
            x_t: (B, L) states at t (or (B, L, K) soft states, masked process only).
            x0_probs: (B, L, V) probabilities of the clean token.
            s: () or (B,) target times, ``s <= t``.
            t: () or (B,) current times.

        Returns:
            (B, L, K) probabilities of ``x_s``, in ``x0_probs``'s dtype.
        """
        raise NotImplementedError

    def reverse_rates(self, x_t: Tensor, x0_probs: Tensor, t: Tensor | float) -> Tensor:
        """Reverse-time jump rates ``R_t(x_t -> j)`` of each position, given predicted x0.

        ``R_t(k -> j) = Q_t[j, k] sum_{x0} p(x0 | x_t) q_t(j | x0) / q_t(k | x0)``
        (Campbell et al. 2022, arXiv:2205.14987, with their x0 parameterisation).

        Args:
            x_t: (B, L) states at t.
            x0_probs: (B, L, V) probabilities of the clean token.
            t: () or (B,) times.

        Returns:
            (B, L, K) rates >= 0 to every other state; the entry of the current state is 0
            (not minus the total).
        """
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class MaskedProcess(DiscreteProcess):
    """Masked (absorbing-state) diffusion: each token turns into the mask id ``V`` and stays.

    ``q(x_t | x_0) = alpha_t [x_t = x_0] + (1 - alpha_t) [x_t = m]``; the prior is all-mask.
    With the SUBS parameterisation (MDLM, Sahoo et al. 2024, arXiv:2406.07524) the
    network never predicts the mask and unmasked tokens are carried over unchanged.

    >>> p = MaskedProcess(vocab_size=4)
    >>> p.mask_id, p.num_states
    (4, 5)
    """

    @property
    def mask_id(self) -> int:
        """The id of the mask token: ``vocab_size``."""
        return self.vocab_size

    @property
    def num_states(self) -> int:  # noqa: D102
        return self.vocab_size + 1

    def _rows(self, onehot: Tensor, r: Tensor) -> Tensor:
        m = self.mask_id
        out = r * onehot
        stay_mask = onehot[..., m : m + 1]
        out[..., m : m + 1] = stay_mask + (1 - r) * (1 - stay_mask)
        return out

    def _noise_tokens(self, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.full_like(x0, self.mask_id)

    def prior_sample(self, like: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """All-mask states shaped like ``like`` (B, L) (no randomness)."""
        return torch.full(like.shape[:2], self.mask_id, dtype=torch.long, device=like.device)

    def _parameterise(self, raw: Tensor, x: Tensor) -> Tensor:
        if raw.ndim == 3 and raw.shape[-1] == self.num_states:
            raw = raw[..., : self.vocab_size]  # SUBS: the mask is never a clean token
        if x.is_floating_point():
            return DiscreteProcess._parameterise(self, raw, x.argmax(-1))
        return DiscreteProcess._parameterise(self, raw, x)

    def x0_probs(self, raw: Tensor, x: Tensor) -> Tensor:  # noqa: D102
        probs = self._parameterise(raw, x).softmax(-1)
        v, m = self.vocab_size, self.mask_id
        if x.is_floating_point():  # soft states: carry the unmasked mass over
            return x[..., :v].to(probs.dtype) + x[..., m : m + 1].to(probs.dtype) * probs
        x = self.check_tokens(x)
        keep = (x != m)[..., None]
        return torch.where(
            keep, torch.nn.functional.one_hot(x.clamp(max=v - 1), v).to(probs), probs
        )

    def x0_log_probs(self, raw: Tensor, x: Tensor) -> Tensor:  # noqa: D102
        x = self.check_tokens(x)
        logp = self._parameterise(raw, x).log_softmax(-1)
        v = self.vocab_size
        keep = (x != self.mask_id)[..., None]
        carried = torch.nn.functional.one_hot(x.clamp(max=v - 1), v).bool()
        carried_logp = torch.zeros_like(logp).masked_fill(~carried, float("-inf"))
        return torch.where(keep, carried_logp, logp)

    def posterior_probs(  # noqa: D102
        self, x_t: Tensor, x0_probs: Tensor, s: Tensor | float, t: Tensor | float
    ) -> Tensor:
        v, m = self.vocab_size, self.mask_id
        soft = x_t.is_floating_point()
        onehot = x_t if soft else torch.nn.functional.one_hot(self.check_tokens(x_t, "x_t"), m + 1)
        if soft and (x_t.ndim != 3 or x_t.shape[-1] != m + 1):
            raise ValueError(
                f"soft `x_t` must have shape (B, L, K) with K = {m + 1}, got {tuple(x_t.shape)}."
            )
        self._check_x0_probs(x0_probs, x_t)
        s = self._check_batch_time(s, x_t.shape[0], "s")
        t = self._check_batch_time(t, x_t.shape[0], "t")
        a_s, a_t = self.schedule.alpha(s), self.schedule.alpha(t)
        # P(stay masked from t to s | masked at t) = (1 - alpha_s) / (1 - alpha_t)
        stay = ((1 - a_s) / (1 - a_t).clamp_min(_TINY)).clamp(0.0, 1.0)
        onehot = onehot.to(x0_probs.dtype)
        stay = _col(stay, 3, onehot)
        masked = onehot[..., m : m + 1]
        unmask = masked * (1 - stay) * x0_probs
        return torch.cat([onehot[..., :v] + unmask, masked * stay], dim=-1)

    def reverse_rates(  # noqa: D102
        self, x_t: Tensor, x0_probs: Tensor, t: Tensor | float
    ) -> Tensor:
        x_t = self.check_tokens(x_t, "x_t")
        self._check_x0_probs(x0_probs, x_t)
        t = self._check_batch_time(t, x_t.shape[0])
        # -alpha' / (1 - alpha): the unmasking rate of every masked position (MDLM)
        w = -self.schedule.d_alpha(t) / (1 - self.schedule.alpha(t)).clamp_min(_TINY)
        masked = (x_t == self.mask_id)[..., None].to(x0_probs.dtype)
        to_tokens = _col(w, 3, x0_probs) * masked * x0_probs
        return torch.cat([to_tokens, torch.zeros_like(to_tokens[..., :1])], dim=-1)


@dataclass(frozen=True, kw_only=True)
class UniformProcess(DiscreteProcess):
    """Uniform diffusion: each token is redrawn uniformly from the V tokens at rate beta(t).

    ``q(x_t | x_0) = alpha_t [x_t = x_0] + (1 - alpha_t) / V``; the prior is uniform. Tokens
    keep changing until t = 0, so the network predicts x0 at every position (no carry-over).

    >>> UniformProcess(vocab_size=4).num_states
    4
    """

    @property
    def num_states(self) -> int:  # noqa: D102
        return self.vocab_size

    def _rows(self, onehot: Tensor, r: Tensor) -> Tensor:
        return r * onehot + (1 - r) / self.vocab_size

    def _noise_tokens(self, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.randint(0, self.vocab_size, x0.shape, generator=generator, device=x0.device)

    def prior_sample(self, like: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Uniform tokens shaped like ``like`` (B, L), drawn from ``generator``."""
        return torch.randint(
            0, self.vocab_size, like.shape[:2], generator=generator, device=like.device
        )

    def _weights(self, x_t: Tensor, x0_probs: Tensor, a_t: Tensor) -> tuple[Tensor, Tensor]:
        """``w_i = p_i / q_t(x_t | x0 = i)`` and its sum over i, for (B, L, V) ``x0_probs``."""
        v = self.vocab_size
        a = _col(a_t, 3, x0_probs)
        onehot = torch.nn.functional.one_hot(x_t, v).to(x0_probs.dtype)
        w = x0_probs / (a * onehot + (1 - a) / v).clamp_min(_TINY)
        return w, w.sum(-1, keepdim=True)

    def posterior_probs(  # noqa: D102
        self, x_t: Tensor, x0_probs: Tensor, s: Tensor | float, t: Tensor | float
    ) -> Tensor:
        if x_t.is_floating_point():
            raise ValueError("soft (one-hot) states are only supported by MaskedProcess.")
        x_t = self.check_tokens(x_t, "x_t")
        self._check_x0_probs(x0_probs, x_t)
        s = self._check_batch_time(s, x_t.shape[0], "s")
        t = self._check_batch_time(t, x_t.shape[0], "t")
        v = self.vocab_size
        a_s, a_t = self.schedule.alpha(s), self.schedule.alpha(t)
        w, w_sum = self._weights(x_t, x0_probs, a_t)
        a_s3 = _col(a_s, 3, w)
        # sum_i p_i q(x_s = j | x0 = i) / q(x_t | x0 = i), times q(x_t | x_s = j)
        inner = a_s3 * w + (1 - a_s3) / v * w_sum
        r = _col(a_t / a_s, 3, w)
        onehot = torch.nn.functional.one_hot(x_t, v).to(w.dtype)
        out = (r * onehot + (1 - r) / v) * inner
        return out / out.sum(-1, keepdim=True)

    def reverse_rates(  # noqa: D102
        self, x_t: Tensor, x0_probs: Tensor, t: Tensor | float
    ) -> Tensor:
        x_t = self.check_tokens(x_t, "x_t")
        self._check_x0_probs(x0_probs, x_t)
        t = self._check_batch_time(t, x_t.shape[0])
        v = self.vocab_size
        a_t = self.schedule.alpha(t)
        w, w_sum = self._weights(x_t, x0_probs, a_t)
        a = _col(a_t, 3, w)
        ratio = a * w + (1 - a) / v * w_sum  # sum_i p_i q_t(j | i) / q_t(x_t | i)
        beta = _col(self.schedule.rate(t), 3, w)
        rates = beta / v * ratio
        return rates.masked_fill(torch.nn.functional.one_hot(x_t, v).bool(), 0.0)

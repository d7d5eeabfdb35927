r"""Exact answers for tiny vocabularies and lengths, by enumerating all ``V^L`` sequences.

For checks and teaching, not for training: everything here is exponential in L.

* :func:`all_sequences` lists the sequences in lexicographic order (the index of ``x`` is ``x``
  read as a base-V number).
* :class:`ExactPosterior` is a network whose output is the exact ``log p(x0^l | x_t)`` of a
  tabulated data distribution, so a sampler or an ELBO can be checked against ground truth.
* :func:`model_distribution` integrates the Kolmogorov forward equation of a model's
  continuous-time reverse chain over all ``K^L`` states, giving the exact distribution (hence the
  exact log-likelihood) of the model's generative process, which an ELBO must lower-bound.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .denoiser import as_denoiser
from .processes import DiscreteProcess, MaskedProcess

__all__ = ["ExactPosterior", "all_sequences", "model_distribution"]

_MAX_STATES = 1 << 16  # refuse enumerations larger than this


def all_sequences(vocab_size: int, length: int, *, device: Any = None) -> Tensor:
    """All ``vocab_size ** length`` sequences in lexicographic order.

    Returns:
        (V^L, L) int64; row ``i`` is ``i`` written in base V (most significant first).

    >>> all_sequences(2, 2).tolist()
    [[0, 0], [0, 1], [1, 0], [1, 1]]
    """
    if vocab_size < 1 or length < 1:
        raise ValueError(f"need vocab_size >= 1 and length >= 1, got {vocab_size}, {length}.")
    if vocab_size**length > _MAX_STATES:
        raise ValueError(
            f"{vocab_size}^{length} = {vocab_size**length} sequences is too many to enumerate "
            f"(limit {_MAX_STATES})."
        )
    idx = torch.arange(vocab_size**length, device=device)
    powers = vocab_size ** torch.arange(length - 1, -1, -1, device=device)
    return (idx[:, None] // powers) % vocab_size


def _index(x: Tensor, base: int) -> Tensor:
    powers = base ** torch.arange(x.shape[-1] - 1, -1, -1, device=x.device)
    return (x * powers).sum(-1)


class ExactPosterior(nn.Module):
    """The Bayes-optimal denoiser of a tabulated distribution: ``log p(x0^l = v | x_t)``.

    ``p(x0 | x_t) ∝ p(x0) prod_l q(x_t^l | x0^l)`` over all ``V^L`` sequences, then marginalised
    to each position. Use it as the network of a :class:`~diffcore.discrete.DiscreteDenoiser`.

    Args:
        process: the discrete process.
        probs: (V^L,) probabilities of the sequences of :func:`all_sequences` (need not be
            normalised; zeros allowed).
        length: L.
    """

    seqs: Tensor
    log_prior: Tensor
    onehot: Tensor

    def __init__(self, process: DiscreteProcess, probs: Tensor, length: int) -> None:
        super().__init__()
        v = process.vocab_size
        seqs = all_sequences(v, length)
        probs = torch.as_tensor(probs, dtype=torch.float64)
        if probs.shape != (seqs.shape[0],) or bool((probs < 0).any()) or not probs.sum() > 0:
            raise ValueError(
                f"`probs` must be {seqs.shape[0]} non-negative weights (V^L = {v}^{length}), "
                f"got shape {tuple(probs.shape)}."
            )
        self.process = process
        self.register_buffer("seqs", seqs, persistent=False)
        self.register_buffer("log_prior", torch.log(probs / probs.sum()), persistent=False)
        self.register_buffer(
            "onehot", nn.functional.one_hot(seqs, v).to(torch.float64), persistent=False
        )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """(B, L) states and (B,) times -> (B, L, V) exact log-posteriors of each position."""
        x = self.process.check_tokens(x)
        length = self.seqs.shape[1]
        if x.shape[1] != length:
            raise ValueError(f"`x` must have length L = {length}, got {tuple(x.shape)}.")
        b = x.shape[0]
        t = t.to(torch.float64).expand(b)
        trans = self.process.transition_matrix(torch.zeros_like(t), t)  # (B, K, K)
        log_m = torch.log(trans[:, : self.process.vocab_size])  # log q(x_t = k | x0 = v)
        rows = torch.arange(b, device=x.device)[:, None, None]
        log_lik = log_m[rows, self.seqs[None], x[:, None, :]].sum(-1)  # (B, N)
        log_joint = self.log_prior + log_lik
        impossible = ~torch.isfinite(log_joint.amax(-1, keepdim=True))  # q(x_t) = 0 at this t
        post = torch.softmax(torch.where(impossible, self.log_prior, log_joint), dim=-1)
        marg = torch.einsum("bn,nlv->blv", post, self.onehot)
        return torch.log(marg).to(torch.get_default_dtype())


def _default_grid(n: int) -> Tensor:
    """Times in [0, 1], geometric towards both ends, where reverse rates change fastest."""
    half = torch.logspace(-8, math.log10(0.5), n // 2, dtype=torch.float64)
    return torch.cat(
        [
            torch.zeros(1, dtype=torch.float64),
            half,
            1 - half.flip(0)[1:],
            torch.ones(1, dtype=torch.float64),
        ]
    ).flip(0)


@torch.no_grad()
def model_distribution(model: Any, length: int, *, steps: int = 2000) -> Tensor:
    """The distribution of clean sequences generated by a model's continuous-time reverse chain.

    Builds the (S, S) generator of the reverse CTMC over all S = K^L states from
    :meth:`~diffcore.discrete.processes.DiscreteProcess.reverse_rates` (one jump changes one
    position), starts from the prior at t = 1 and applies ``expm(G(t_mid) dt)`` on a grid
    refined geometrically towards both ends. The result is exact up to the time discretisation
    (a few 1e-4 at the default ``steps``).

    Args:
        model: a :class:`~diffcore.discrete.DiscreteDenoiser` (its network must accept any
            state, masks included).
        length: L.
        steps: grid size.

    Returns:
        (V^L,) float64 probabilities of the sequences of :func:`all_sequences`; mass left on
        states with masks at t = 0 (negligible) is dropped, so the sum may be below 1.
    """
    model = as_denoiser(model)
    process = model.process
    k, v = process.num_states, process.vocab_size
    states = all_sequences(k, length)
    s = states.shape[0]
    pi = torch.zeros(s, dtype=torch.float64)
    if isinstance(process, MaskedProcess):
        pi[-1] = 1.0  # all-mask is the last state (mask id = K - 1)
    else:
        pi[:] = 1.0 / s
    powers = k ** torch.arange(length - 1, -1, -1)
    grid = _default_grid(steps)
    rows = torch.arange(s)[:, None, None].expand(s, length, k)
    # index of the state reached by setting position l to j
    dst = (
        _index(states, k)[:, None, None]
        + (torch.arange(k)[None, None, :] - states[:, :, None]) * powers[None, :, None]
    )
    for hi, lo in zip(grid[:-1], grid[1:], strict=True):
        mid = 0.5 * (hi + lo)
        rates = process.reverse_rates(states, model.probs(states, mid).to(torch.float64), mid)
        gen = torch.zeros(s, s, dtype=torch.float64)
        gen.index_put_((rows.reshape(-1), dst.reshape(-1)), rates.reshape(-1), accumulate=True)
        gen -= torch.diag(gen.sum(-1))
        pi = pi @ torch.linalg.matrix_exp(gen * (hi - lo))
    clean = _index(all_sequences(v, length), k)
    return pi[clean]

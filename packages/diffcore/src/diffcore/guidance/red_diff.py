r"""RED-Diff: variational posterior sampling as regularised optimisation.

Mardani et al. 2023 (arXiv:2305.04391), Algorithm 1. The posterior over x for ``y = A x + n``,
``n ~ N(0, sigma_y^2 I)``, is approximated by a point mass (a Gaussian of vanishing variance)
at ``mu``, found by minimising, with a descending schedule of times t and fresh noise eps,

.. math::

    \ell(\mu) = \frac{\|y - A\mu\|^2}{2\sigma_y^2}
        + \lambda\, w(t)\, \mathrm{sg}\big[\hat\epsilon(x_t, t) - \epsilon\big]^\top \mu,
    \qquad x_t = \alpha_t \mu + \sigma_t \epsilon,

where ``sg`` stops gradients: the network is evaluated but never differentiated. The
regulariser's gradient is the score-distillation direction; ``w(t) = sigma_t / alpha_t``
(inverse square root of the SNR) is the default of the paper's code,
with ``lambda = 0.25`` and Adam at ``lr = 0.1``, betas (0.9, 0.99)
(NVlabs/RED-diff: _configs/algo/reddiff.yaml), started at ``A^+ y``.

For a Gaussian prior N(m, v I) the expected regulariser gradient at time t is
``lambda w(t) alpha sigma / (alpha^2 v + sigma^2) (mu - m)``: with
``lambda w(t) = (alpha^2 v + sigma^2) / (v alpha sigma)`` (:func:`gaussian_weight`, lambda = 1)
the fixed point at every t is exactly the posterior mean, the root of
``A^T (A mu - y) / sigma_y^2 + (mu - m) / v = 0``. For any prior this weight tends to
``alpha / sigma`` as sigma -> 0, where the regulariser's expected gradient becomes the exact
prior score ``-grad log p_0(mu)``; the paper's ``sigma / alpha`` instead fades out there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..operators import LinearOperator
from ..tree import expand_like

WEIGHTS = ("inv_sqrt_snr", "inv_snr", "constant")
_DEFAULT_BETAS = (0.9, 0.99)  # NVlabs/RED-diff: algos/reddiff.py (Adam, "original: 0.999")


def _weight(kind: str | Callable[[Tensor, Tensor], Tensor], alpha: Tensor, sigma: Tensor):
    if callable(kind):
        return kind(alpha, sigma)
    if kind == "inv_sqrt_snr":
        return sigma / alpha
    if kind == "inv_snr":
        return (sigma / alpha) ** 2
    return torch.ones_like(alpha)


def gaussian_weight(data_var: float) -> Callable[[Tensor, Tensor], Tensor]:
    """``w(t) = (alpha^2 v + sigma^2) / (v alpha sigma)``, to be used with ``lam=1``.

    Not the paper's weighting: the one under which RED-Diff's fixed point is the exact
    posterior mean for a N(m, v I) prior (module docstring); ``v`` is the assumed per-dimension
    data (or mixture-component) variance.
    """
    if data_var <= 0:
        raise ValueError(f"`data_var` must be > 0, got {data_var}")

    def weight(alpha: Tensor, sigma: Tensor) -> Tensor:
        return (alpha**2 * data_var + sigma**2) / (data_var * alpha * sigma)

    return weight


def red_diff(
    model: Any,
    operator: LinearOperator,
    y: Tensor,
    *,
    noise_std: float,
    steps: int = 1000,
    lr: float = 0.1,
    lam: float = 0.25,
    weight: str | Callable[[Tensor, Tensor], Tensor] = "inv_sqrt_snr",
    times: Tensor | None = None,
    x_init: Tensor | None = None,
    betas: tuple[float, float] = _DEFAULT_BETAS,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """Estimate x from ``y = A x + n`` with RED-Diff; each batch row is an independent run.

    Args:
        model: the prior Denoiser (or a guidance wrapper) for single-tensor states; only its
            eps prediction is read, without gradients.
        operator: the forward operator A.
        y: (B, *M) measurements, one per run.
        noise_std: measurement noise std sigma_y > 0 (weighs the data term).
        steps: number of optimisation steps (one network evaluation each).
        lr: Adam learning rate.
        lam: regularisation weight lambda.
        weight: w(t): ``"inv_sqrt_snr"`` (sigma/alpha, the paper's), ``"inv_snr"``
            (sigma^2/alpha^2), ``"constant"``, or a callable ``(alpha, sigma) -> w``.
        times: (steps,) decreasing times; default: ``steps`` equal steps strictly inside
            ``(t_min, t_max)`` (both ends excluded: alpha or sigma vanishes there).
        x_init: (B, *S) start of mu; default ``A^+ y`` as in the paper's code.
        betas: Adam's (beta1, beta2).
        generator: draws the noise eps of every step.
        progress: show a progress bar.

    Returns:
        mu: (B, *S) the estimate, in the dtype and device of ``y``.
    """
    if noise_std <= 0:
        raise ValueError(f"`noise_std` must be > 0 (it divides the data term), got {noise_std}")
    if isinstance(weight, str) and weight not in WEIGHTS:
        raise ValueError(f"unknown weight {weight!r}; expected one of {', '.join(WEIGHTS)}")
    if not bool(torch.isfinite(y).all()):
        raise ValueError("`y` contains NaN or inf")
    process = model.process
    if times is None:
        if steps < 1:
            raise ValueError(f"`steps` must be >= 1, got {steps}")
        grid = torch.linspace(process.t_max, process.t_min, steps + 2, dtype=torch.float64)
        times = grid[1:-1]
    times = torch.as_tensor(times, dtype=torch.float64, device=y.device)
    if times.ndim != 1 or (len(times) > 1 and not bool((times[1:] < times[:-1]).all())):
        raise ValueError("`times` must be a 1-D strictly decreasing tensor")
    mu0 = operator.A_dagger(y) if x_init is None else x_init
    mu = mu0.detach().clone().to(y.dtype).requires_grad_(True)
    optimizer = torch.optim.Adam([mu], lr=lr, betas=betas)
    y = y.detach()
    for t in tqdm(times, disable=not progress, desc="RED-Diff", leave=False):
        alpha, sigma = process.alpha(t), process.sigma(t)
        w = lam * _weight(weight, alpha, sigma)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        with torch.no_grad():
            x_t = expand_like(alpha, mu) * mu + expand_like(sigma, mu) * eps
            eps_hat = model(x_t, t).eps
        data = (y - operator.A(mu)).pow(2).flatten(1).sum(1) / (2 * noise_std**2)
        reg = ((eps_hat - eps) * mu).flatten(1).sum(1)
        loss = (data + expand_like(w, data) * reg).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    out = mu.detach()
    if not bool(torch.isfinite(out).all()):
        raise FloatingPointError("RED-Diff produced NaN or inf; try a smaller `lr`")
    return out

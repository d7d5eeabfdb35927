"""Tiny networks fit a small fixed dataset: the eps-prediction loss falls at least 3x.

Data: 16 fixed binary (+-1) 8x8 images. Objective: eps-prediction at one fixed VP noise level,
x_t = alpha x_0 + sigma eps with sigma = 0.4, alpha = sqrt(1 - sigma^2). At initialisation both
networks output exactly zero (zeroed output layers / adaLN-Zero), so the loss starts at
E[eps^2] = 1. The best linear map from x_t to eps only reaches alpha^2 / (alpha^2 + sigma^2) =
0.84 here, so a 3x drop needs a learned nonlinear denoiser. The loss is measured on a fixed
evaluation set of noise draws, before and after a fixed number of Adam steps run by
`diffcore.train.fit` with a fixed seed.
"""

import math

import pytest
import torch

from diffcore.nets import DiT, UNet
from diffcore.train import fit

SIGMA = 0.4
ALPHA = math.sqrt(1 - SIGMA**2)
T_FIXED = 0.5
FACTOR = 3.0


def data_and_eval_noise():
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(16, 1, 8, 8, generator=gen).sign()
    eval_eps = torch.randn(4, 16, 1, 8, 8, generator=gen)
    return x0, eval_eps


def eps_loss(model, batch, generator):
    eps = torch.randn(batch.shape, generator=generator, device=batch.device)
    x_t = ALPHA * batch + SIGMA * eps
    t = torch.full((batch.shape[0],), T_FIXED, device=batch.device)
    return ((model(x_t, t) - eps) ** 2).mean()


@torch.no_grad()
def eval_loss(model, x0, eval_eps):
    t = torch.full((x0.shape[0],), T_FIXED)
    return sum(((model(ALPHA * x0 + SIGMA * e, t) - e) ** 2).mean().item() for e in eval_eps) / len(
        eval_eps
    )


@pytest.mark.parametrize(
    ("build", "steps", "lr"),
    [
        (lambda g: UNet.from_preset("tiny", generator=g), 100, 2e-3),
        (lambda g: DiT.from_preset("tiny", generator=g), 150, 2e-3),
    ],
    ids=["unet", "dit"],
)
def test_tiny_network_fits_fixed_images(build, steps, lr):
    x0, eval_eps = data_and_eval_noise()
    model = build(torch.Generator().manual_seed(1))
    before = eval_loss(model, x0, eval_eps)
    assert before == pytest.approx(1.0, abs=0.05)  # zero output at init
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    fit(model, eps_loss, x0, steps=steps, optimizer=opt, batch_size=16, seed=0, progress=False)
    after = eval_loss(model, x0, eval_eps)
    assert before / after >= FACTOR, f"loss {before:.3f} -> {after:.3f}"

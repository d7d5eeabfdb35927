"""Diffusion Classifier on class-conditional Gaussians: the Bayes-optimal rule is known."""

import pytest
import torch

from diffcore.classifier import diffusion_classify
from diffcore.processes import LinearVP
from diffcore.testing import GaussianData

MEANS = torch.tensor([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]], dtype=torch.float64)
STD = 0.8  # one isotropic covariance: the Bayes rule (equal priors) is the nearest mean
PROCESS = LinearVP()


def setup(n=600):
    g = torch.Generator().manual_seed(0)
    classes = [GaussianData.create(m, torch.full((2,), STD, dtype=torch.float64)) for m in MEANS]
    labels = torch.randint(0, 3, (n,), generator=g)
    x = MEANS[labels] + STD * torch.randn(n, 2, generator=g, dtype=torch.float64)
    bayes = torch.cdist(x, MEANS).argmin(dim=1)
    return [c.denoiser(PROCESS, "eps") for c in classes], x, labels, bayes


def test_reaches_bayes_optimal_accuracy():
    models, x, labels, bayes = setup()
    out = diffusion_classify(models, x, n_trials=128, generator=torch.Generator().manual_seed(1))
    acc = float((out.labels == labels).double().mean())
    bayes_acc = float((bayes == labels).double().mean())
    assert abs(acc - bayes_acc) < 0.03, (acc, bayes_acc)
    # near the boundary the Monte Carlo estimate can flip; most points agree with Bayes
    assert float((out.labels == bayes).double().mean()) > 0.9


def test_pruning_saves_evaluations_and_keeps_the_answer():
    models, x, _, bayes = setup(300)
    full = diffusion_classify(models, x, n_trials=48, generator=torch.Generator().manual_seed(2))
    nfe_full = sum(m.nfe for m in models)
    models2, _, _, _ = setup(300)
    pruned = diffusion_classify(
        models2, x, stages=[(16, 2), (32, 1)], generator=torch.Generator().manual_seed(2)
    )
    nfe_pruned = sum(m.nfe for m in models2)
    assert torch.isinf(pruned.errors).sum(dim=1).eq(2).all()  # one class survives per sample
    assert float((pruned.labels == full.labels).double().mean()) > 0.85
    assert float((pruned.labels == bayes).double().mean()) > 0.85
    assert nfe_pruned <= nfe_full


def test_bad_input_is_named():
    models, x, _, _ = setup(4)
    with pytest.raises(ValueError, match="at least two"):
        diffusion_classify(models[:1], x)
    with pytest.raises(ValueError, match="keep"):
        diffusion_classify(models, x, stages=[(4, 5)])

"""Classifier guidance against the exact Bayes classifier of a Gaussian mixture.

With p(k | x_t) exact and scale 1, the guided score is the score of component k's noisy
marginal, so guided sampling must reproduce sampling component k's own exact denoiser (same
solver, grid and noise: only rounding differs) and the component's moments.
"""

import pytest
import torch

from diffcore.guidance import ClassifierFreeGuidance, ClassifierGuidance
from diffcore.processes import LinearVP
from diffcore.samplers import DPMSolverPP2M, append_zero, karras, sample
from diffcore.testing import GaussianData, GaussianMixtureData

F64 = torch.float64
PROCESS = LinearVP()
DATA = GaussianMixtureData(
    weights=torch.tensor([0.7, 0.3], dtype=F64),
    means=torch.tensor([[-1.5, 0.5], [1.0, -1.0]], dtype=F64),
    stds=torch.tensor([[0.5, 0.8], [0.3, 0.6]], dtype=F64),
)


def bayes_logits(x, t):
    return DATA.log_responsibilities(x, PROCESS.alpha(t), PROCESS.sigma(t))


def component(k):
    return GaussianData.create(DATA.means[k], DATA.stds[k])


def run(model, n=2000):
    grid = append_zero(karras(PROCESS, 40, t_end=1e-3))
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    return sample(model, x, grid, DPMSolverPP2M(), progress=False).x


@pytest.mark.parametrize("label", [0, 1])
def test_exact_classifier_at_scale_one_samples_the_class(label):
    guided = ClassifierGuidance(DATA.denoiser(PROCESS, "eps"), bayes_logits, 1.0, label=label)
    xs = run(guided)
    ref = run(component(label).denoiser(PROCESS, "eps"))
    assert float((xs - ref).abs().max()) < 1e-8
    # moments of the class (2000 samples: standard errors ~ 0.02 std)
    torch.testing.assert_close(xs.mean(0), DATA.means[label], atol=0.06, rtol=0)
    torch.testing.assert_close(xs.std(0), DATA.stds[label], atol=0.05, rtol=0)
    assert guided.nfe > 0 and guided.process is PROCESS


def test_log_probability_classifier_and_per_sample_labels():
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    by_logits = ClassifierGuidance(DATA.denoiser(PROCESS, "eps"), bayes_logits, 2.0, label=labels)

    def log_p(x, t):
        return bayes_logits(x, t).gather(1, labels[:, None])[:, 0]

    by_log_p = ClassifierGuidance(DATA.denoiser(PROCESS, "eps"), log_p, 2.0)
    torch.testing.assert_close(by_logits(x, 0.4).eps, by_log_p(x, 0.4).eps)


def test_scale_zero_is_the_model_and_it_composes():
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    model = DATA.denoiser(PROCESS, "eps")
    off = ClassifierGuidance(model, bayes_logits, 0.0, label=1)
    torch.testing.assert_close(off(x, 0.5).eps, model(x, 0.5).eps)
    # around a CFG wrapper at w = 1 (the conditional model): the same as around that model
    cfg = ClassifierFreeGuidance(model, component(0).denoiser(PROCESS, "eps"), 1.0)
    outer = ClassifierGuidance(cfg, bayes_logits, 1.0, label=1)
    torch.testing.assert_close(outer(x, 0.5).eps, run_once(model, x))


def run_once(model, x):
    return ClassifierGuidance(model, bayes_logits, 1.0, label=1)(x, 0.5).eps


def test_bad_classifier_output_is_named():
    model = DATA.denoiser(PROCESS, "eps")
    x = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(ValueError, match="label"):
        ClassifierGuidance(model, bayes_logits, 1.0)(x, 0.5)
    with pytest.raises(ValueError, match=r"logits of shape \(B, C\)"):
        ClassifierGuidance(model, lambda x, t: x.sum(1), 1.0, label=0)(x, 0.5)

"""Guidance against closed forms: Gaussians of one covariance make CFG and composition exact."""

import pytest
import torch

from diffcore.guidance import ClassifierFreeGuidance, Composition
from diffcore.processes import LinearVP
from diffcore.samplers import UniPC, append_zero, karras, sample
from diffcore.testing import GaussianData

STD = torch.tensor([0.6, 1.2])
PROCESS = LinearVP()


def gaussian(mean):
    return GaussianData.create(torch.tensor(mean), STD)


def flow_error(model, target):
    """Max deviation of guided sampling from sampling ``target``'s exact denoiser with the same
    solver, grid and noise (the guided eps equals the target's, so only rounding remains); also
    checks both against the target's exact flow map up to the solver's error."""
    grid = append_zero(karras(PROCESS, 60, t_end=1e-3))
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = sample(model, x, grid, UniPC(), progress=False).x
    ref = sample(target.denoiser(PROCESS, "eps"), x, grid, UniPC(), progress=False).x
    assert float((out - target.flow(x, grid[0], grid[-1], PROCESS)).abs().max()) < 1e-2
    return float((out - ref).abs().max())


@pytest.mark.parametrize("scale", [0.0, 1.0, 3.0])
def test_cfg_samples_the_tilted_gaussian(scale):
    # p_c^w p_u^(1-w) for N(mu_c, S) and N(mu_u, S) is N(mu_u + w (mu_c - mu_u), S).
    mu_c, mu_u = [1.0, -1.0], [0.0, 0.5]
    cfg = ClassifierFreeGuidance(
        gaussian(mu_c).denoiser(PROCESS, "eps"), gaussian(mu_u).denoiser(PROCESS, "eps"), scale
    )
    tilted = [u + scale * (c - u) for c, u in zip(mu_c, mu_u, strict=True)]
    assert flow_error(cfg, gaussian(tilted)) < 1e-9
    assert cfg.nfe % 2 == 0 and cfg.nfe > 0


def test_guidance_interval_switches_guidance_off_outside():
    cond, uncond = (
        gaussian([1.0, -1.0]).denoiser(PROCESS, "eps"),
        gaussian([0.0, 0.0]).denoiser(PROCESS, "eps"),
    )
    x = torch.randn(4, 2, dtype=torch.float64)
    outside = ClassifierFreeGuidance(cond, uncond, 4.0, interval=(0.8, 1.0))(x, 0.5)
    inside = ClassifierFreeGuidance(cond, uncond, 4.0, interval=(0.2, 0.6))(x, 0.5)
    torch.testing.assert_close(outside.eps, cond(x, 0.5).eps)
    torch.testing.assert_close(inside.eps, ClassifierFreeGuidance(cond, uncond, 4.0)(x, 0.5).eps)


def test_rescale_matches_conditional_std():
    cond, uncond = (
        gaussian([2.0, -1.0]).denoiser(PROCESS, "eps"),
        gaussian([0.0, 0.0]).denoiser(PROCESS, "eps"),
    )
    x = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    guided = ClassifierFreeGuidance(cond, uncond, 5.0, rescale=1.0)(x, 0.3).eps
    torch.testing.assert_close(guided.std(dim=1), cond(x, 0.3).eps.std(dim=1))


@pytest.mark.parametrize(
    ("w2", "expected"), [(1.0, [1.5, 1.0]), (-1.0, [-0.5, -1.0])], ids=["AND", "NOT"]
)
def test_composition_of_gaussian_concepts(w2, expected):
    # p_u (p_1 / p_u) (p_2 / p_u)^w2, one covariance: mean mu_u + (mu_1 - mu_u) + w2 (mu_2 - mu_u)
    mu_u, mu_1, mu_2 = [0.0, 0.0], [0.5, 0.0], [1.0, 1.0]
    comp = Composition(
        gaussian(mu_u).denoiser(PROCESS, "eps"),
        [
            (gaussian(mu_1).denoiser(PROCESS, "eps"), 1.0),
            (gaussian(mu_2).denoiser(PROCESS, "eps"), w2),
        ],
    )
    assert flow_error(comp, gaussian(expected)) < 1e-9


def test_bad_arguments_are_named():
    d = gaussian([0.0, 0.0]).denoiser(PROCESS, "eps")
    with pytest.raises(ValueError, match="rescale"):
        ClassifierFreeGuidance(d, d, 2.0, rescale=2.0)
    with pytest.raises(ValueError, match="concepts"):
        Composition(d, [])

import numpy as np
import pytest
import torch

from diffcore.inversion import dpm_decode, dpm_encode, invert, reconstruction_error
from diffcore.processes import LinearVP, RectifiedFlow
from diffcore.samplers import (
    DDIM,
    DPMSolverPP2M,
    EulerMaruyama,
    Midpoint,
    quadratic_t,
    sample,
    uniform_t,
)
from diffcore.testing import GaussianData, GaussianMixtureData

DATA = GaussianData.create(torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.5]))


def round_trip_error(rule, n, process, grid_fn):
    model = DATA.denoiser(process, "eps" if isinstance(process, LinearVP) else "velocity")
    grid = grid_fn(process, n)
    x0 = DATA.sample(64, generator=torch.Generator().manual_seed(0))
    latent = invert(model, x0, grid, rule, progress=False).x
    exact = DATA.flow(x0, grid[-1], grid[0], process)  # the exact latent
    back = sample(model, latent, grid, rule, progress=False).x
    return float((back - x0).abs().max()), float((latent - exact).abs().max())


CASES = [
    (DDIM(), LinearVP(), lambda p, n: quadratic_t(p, n, t_end=1e-2)),
    (DPMSolverPP2M(), LinearVP(), lambda p, n: quadratic_t(p, n, t_end=1e-2)),
    (Midpoint(), RectifiedFlow(), lambda p, n: uniform_t(p, n, t_start=0.99, t_end=0.01)),
]


@pytest.mark.parametrize(
    ("rule", "process", "grid_fn"), CASES, ids=["DDIM", "DPM++2M", "RF-Solver"]
)
def test_inversion_round_trip_converges_at_the_solver_order(rule, process, grid_fn):
    ns = np.array([16, 32, 64, 128])
    errs = [round_trip_error(rule, int(n), process, grid_fn) for n in ns]
    recon = [e[0] for e in errs]
    latent = [e[1] for e in errs]
    # at least the solver's order (second-order rules superconverge on this linear Gaussian flow)
    for series in (recon, latent):
        slope = -np.polyfit(np.log(ns), np.log(series), 1)[0]
        assert slope > rule.order - 0.35, series
        assert series[-1] < series[0]


def test_stochastic_rule_cannot_invert():
    model = DATA.denoiser(LinearVP(), "eps")
    with pytest.raises(ValueError, match="stochastic"):
        invert(
            model,
            torch.zeros(2, 2, dtype=torch.float64),
            uniform_t(LinearVP(), 4, t_end=0.01),
            EulerMaruyama(),
            progress=False,
        )


MIXTURE = GaussianMixtureData(
    weights=torch.tensor([0.5, 0.5], dtype=torch.float64),
    means=torch.tensor([[-1.0, 1.0], [1.5, -0.5]], dtype=torch.float64),
    stds=torch.tensor([[0.3, 0.2], [0.25, 0.4]], dtype=torch.float64),
)


@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_dpm_encoder_latents_decode_exactly(eta):
    process = LinearVP()
    model = MIXTURE.denoiser(process, "eps")
    grid = uniform_t(process, 12)  # ends at sigma = 0: the last "noise" is a residual
    x0 = MIXTURE.sample(32, generator=torch.Generator().manual_seed(1))
    latents = dpm_encode(model, x0, grid, eta=eta, generator=torch.Generator().manual_seed(2))
    assert len(latents.noises) == 12
    back = dpm_decode(model, latents, grid, eta=eta)
    torch.testing.assert_close(back, x0, atol=1e-10, rtol=0)
    # the step noises of a trajectory drawn from the forward process are standard-normal-ish
    z = torch.cat(latents.noises[:-1])
    assert abs(float(z.mean())) < 0.15 and abs(float(z.std()) - 1) < 0.25


def test_dpm_encoder_translates_between_models():
    # CycleDiffusion: decode the latents of one model with another (shifted) model
    process = LinearVP()
    shifted = GaussianMixtureData(
        weights=MIXTURE.weights, means=MIXTURE.means + 3.0, stds=MIXTURE.stds
    )
    grid = uniform_t(process, 20)
    x0 = MIXTURE.sample(64, generator=torch.Generator().manual_seed(3))
    latents = dpm_encode(
        MIXTURE.denoiser(process, "eps"), x0, grid, generator=torch.Generator().manual_seed(4)
    )
    out = dpm_decode(shifted.denoiser(process, "eps"), latents, grid)
    assert float((out - x0 - 3.0).abs().mean()) < 0.6  # moved to the other domain
    assert float(shifted.log_prob(out).mean()) > float(shifted.log_prob(x0).mean()) + 5


def test_dpm_encoder_refuses_deterministic_eta():
    model = MIXTURE.denoiser(LinearVP(), "eps")
    with pytest.raises(ValueError, match="eta"):
        dpm_encode(model, torch.zeros(2, 2, dtype=torch.float64), uniform_t(LinearVP(), 4), eta=0)


def test_dire_falls_at_the_solver_order():
    process = LinearVP()
    model = MIXTURE.denoiser(process, "eps")
    real = MIXTURE.sample(256, generator=torch.Generator().manual_seed(5))
    errs = [
        float(reconstruction_error(model, real, quadratic_t(process, n, t_end=1e-2), DDIM()).mean())
        for n in (10, 20, 40)
    ]
    assert errs[0] > errs[1] > errs[2]
    slope = -np.polyfit(np.log([10, 20, 40]), np.log(errs), 1)[0]
    assert slope > 0.7  # DDIM is first order
    dire = reconstruction_error(model, real, quadratic_t(process, 10, t_end=1e-2), DDIM())
    assert dire.shape == real.shape and bool((dire >= 0).all())

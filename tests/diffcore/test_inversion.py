import numpy as np
import pytest
import torch

from diffcore.inversion import invert
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
from diffcore.testing import GaussianData

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

import numpy as np
import pytest
import torch

from diffcore.processes import EDM, DiscreteVP, LinearVP, RectifiedFlow
from diffcore.samplers import (
    DDIM,
    GHVB,
    RK4,
    S4,
    AdaptiveDPMSolver,
    DDPMAncestral,
    DormandPrince,
    DPMSolver,
    DPMSolverPP2M,
    DPMSolverPP2MHeavyBall,
    DPMSolverPP2S,
    DPMSolverPP3M,
    Euler,
    EulerMaruyama,
    Heun,
    Langevin,
    Midpoint,
    PLMSHeavyBall,
    PredictorCorrector,
    SDEDPMSolverPP2M,
    UniPC,
    append_zero,
    karras,
    quadratic_t,
    sample,
    searched_grid,
    uniform_lambda,
    uniform_t,
)
from diffcore.testing import GaussianData

DATA = GaussianData.create(torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.5, 1.5, 0.1]))

ODE_RULES = [
    Euler(),
    Heun(),
    Midpoint(),
    RK4(),
    DDIM(),
    DPMSolver(solver_order=1),
    DPMSolver(solver_order=2),
    DPMSolver(solver_order=3),
    DPMSolverPP2S(),
    DPMSolverPP2M(),
    DPMSolverPP3M(),
    DPMSolverPP3M(warmup_singlestep=True),
    UniPC(solver_order=1),
    UniPC(solver_order=2),
    PLMSHeavyBall(p=2, beta=1.0),
    PLMSHeavyBall(p=2, beta=0.8),
    GHVB(p=1, beta=0.8),
    GHVB(p=2, beta=0.8),
    DPMSolverPP2MHeavyBall(beta=0.8),
]
SDE_RULES = [
    EulerMaruyama(),
    DDIM(eta=1.0),
    DDPMAncestral(),
    SDEDPMSolverPP2M(),
    PredictorCorrector(),
]


def quadratic(process, n):
    return quadratic_t(process, n, t_end=1e-3)


def pf_error(rule, n, process=None, grid_fn=quadratic, dtype=torch.float64):
    process = process or LinearVP()
    model = DATA.denoiser(process, "eps")
    grid = grid_fn(process, n)
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(1), dtype=dtype)
    out = sample(model, x, grid, rule, progress=False)
    ref = DATA.flow(x, grid[0], grid[-1], process)
    return float((out.x - ref).pow(2).mean().sqrt())


@pytest.mark.parametrize("rule", ODE_RULES, ids=str)
def test_order(rule):
    ns = np.array([16, 32, 64, 128])
    err = [pf_error(rule, int(n)) for n in ns]
    slope = -np.polyfit(np.log(ns), np.log(err), 1)[0]
    assert slope == pytest.approx(rule.order, abs=0.3), err


@pytest.mark.parametrize("rule", [Euler(), Heun(), RK4(), DPMSolverPP2M()], ids=str)
def test_order_rectified_flow(rule):
    proc = RectifiedFlow()
    ns = np.array([16, 32, 64, 128])
    grid_fn = lambda p, n: uniform_t(p, n, t_start=0.99, t_end=0.01)  # noqa: E731
    err = [pf_error(rule, int(n), proc, grid_fn) for n in ns]
    slope = -np.polyfit(np.log(ns), np.log(err), 1)[0]
    assert slope == pytest.approx(rule.order, abs=0.3), err


def test_dormand_prince_meets_tolerance():
    model = DATA.denoiser(LinearVP(), "eps")
    grid = torch.tensor([1.0, 1e-3], dtype=torch.float64)
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for tol in (1e-4, 1e-7):
        out = sample(model, x, grid, DormandPrince(rtol=tol, atol=tol), progress=False)
        err = float((out.x - DATA.flow(x, grid[0], grid[-1], LinearVP())).abs().max())
        assert err < 50 * tol


@pytest.mark.parametrize(
    "process", [LinearVP(), DiscreteVP.linear(), EDM()], ids=lambda p: type(p).__name__
)
def test_dpm_solver_1_equals_ddim(process):
    model = DATA.denoiser(process, "eps")
    grid = uniform_lambda(process, 10)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = sample(model, x, grid, DDIM(), progress=False).x
    b = sample(model, x, grid, DPMSolver(solver_order=1), progress=False).x
    torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    # DPM-Solver++(1) is the data-prediction form of the same update
    c = sample(model, x, grid, UniPC(solver_order=1, corrector=False), progress=False).x
    torch.testing.assert_close(a, c, atol=1e-10, rtol=0)


def test_ddim_eta_one_is_ddpm_ancestral():
    process = LinearVP()
    model = DATA.denoiser(process, "eps")
    grid = uniform_t(process, 20, t_end=1e-3)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = sample(
        model, x, grid, DDIM(eta=1.0), generator=torch.Generator().manual_seed(5), progress=False
    ).x
    b = sample(
        model, x, grid, DDPMAncestral(), generator=torch.Generator().manual_seed(5), progress=False
    ).x
    torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("rule", SDE_RULES[:-1], ids=str)
def test_stochastic_samplers_reach_data_moments(rule):
    process = LinearVP()
    model = DATA.denoiser(process, "eps")
    g = torch.Generator().manual_seed(0)
    mean, std = DATA.means[0], DATA.stds[0]
    errs = []
    for n in (10, 200):
        grid = append_zero(karras(process, n, t_end=1e-3))
        x = process.prior_sample(torch.empty(8000, 3, dtype=torch.float64), generator=g)
        out = sample(model, x, grid, rule, generator=g, progress=False).x
        errs.append(float((out.mean(0) - mean).abs().max() + (out.std(0) - std).abs().max()))
    # 8000 samples: sampling error of the moments ~ 1.5 / sqrt(8000) = 0.017 per dimension
    assert errs[1] < 0.06, errs
    assert errs[1] < errs[0] or errs[0] < 0.06, errs


@pytest.mark.parametrize("rule", ODE_RULES + SDE_RULES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_finite_in_low_precision_including_final_step_to_zero(rule, dtype):
    for process in (LinearVP(), EDM()):
        model = DATA.denoiser(process, "eps")
        grid = append_zero(karras(process, 6))
        x = process.prior_sample(
            torch.empty(16, 3, dtype=dtype), generator=torch.Generator().manual_seed(0)
        )
        out = sample(
            model, x, grid, rule, generator=torch.Generator().manual_seed(0), progress=False
        )
        assert out.x.dtype == dtype
        assert bool(torch.isfinite(out.x).all())


def test_seeded_determinism_and_trajectory():
    process = LinearVP()
    model = DATA.denoiser(process, "eps")
    grid = uniform_t(process, 5, t_end=1e-3)
    x = torch.randn(4, 3, dtype=torch.float64)
    a = sample(
        model,
        x,
        grid,
        EulerMaruyama(),
        generator=torch.Generator().manual_seed(3),
        progress=False,
        return_trajectory=True,
    )
    b = sample(
        model, x, grid, EulerMaruyama(), generator=torch.Generator().manual_seed(3), progress=False
    )
    torch.testing.assert_close(a.x, b.x)
    assert len(a.trajectory) == 6 and a.nfe == 5


def test_per_sample_times():
    process = LinearVP()
    model = DATA.denoiser(process, "eps")
    grids = torch.stack(
        [
            uniform_t(process, 8, t_start=1.0, t_end=1e-3),
            uniform_t(process, 8, t_start=0.5, t_end=1e-3),
        ],
        1,
    )
    x = torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = sample(model, x, grids, Heun(), progress=False)
    for j in range(2):
        alone = sample(model, x[j : j + 1], grids[:, j], Heun(), progress=False)
        torch.testing.assert_close(out.x[j : j + 1], alone.x)


def test_bad_grid_is_rejected():
    model = DATA.denoiser(LinearVP(), "eps")
    with pytest.raises(ValueError, match="strictly monotone"):
        sample(model, torch.zeros(2, 3), torch.tensor([0.5, 0.1, 0.3]), Euler(), progress=False)


def test_nan_is_reported_with_step():
    model = DATA.denoiser(LinearVP(), "eps")
    with pytest.raises(FloatingPointError, match="step 0"):
        sample(
            model,
            torch.full((2, 3), float("nan")),
            uniform_t(LinearVP(), 3, t_end=1e-3),
            Euler(),
            progress=False,
        )


# The unadjusted Langevin corrector keeps an O(step) bias at fixed snr: use a small one.
@pytest.mark.parametrize("rule", [PredictorCorrector(corrector=Langevin(snr=0.05)), S4()], ids=str)
def test_corrector_samplers_reach_data_moments_in_high_dimension(rule):
    # Song et al.'s SNR step rule assumes ||score|| concentrates, i.e. a high-dimensional state.
    d = 32
    data = GaussianData.create(torch.linspace(-1, 1, d), torch.linspace(0.5, 1.5, d))
    process = LinearVP()
    model = data.denoiser(process, "eps")
    g = torch.Generator().manual_seed(0)
    errs = []
    for n in (10, 200):
        grid = append_zero(karras(process, n, t_end=1e-3))
        x = process.prior_sample(torch.empty(2000, d, dtype=torch.float64), generator=g)
        out = sample(model, x, grid, rule, generator=g, progress=False).x
        errs.append(
            float(
                (out.mean(0) - data.means[0]).abs().mean()
                + (out.std(0) - data.stds[0]).abs().mean()
            )
        )
    assert errs[1] < 0.06 and errs[1] < errs[0], errs


def test_adaptive_dpm_solver_tolerance_controls_error_and_cost():
    process = LinearVP()
    model = DATA.denoiser(process, "eps")
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grid = torch.tensor([1.0, 1e-3], dtype=torch.float64)
    ref = DATA.flow(x, grid[0], grid[-1], process)
    runs = {}
    for order, rtol, atol in ((2, 0.05, 0.0078), (2, 1e-3, 1e-4), (3, 0.05, 0.0078)):
        rule = AdaptiveDPMSolver(solver_order=order, rtol=rtol, atol=atol)
        out = sample(model, x, grid, rule, progress=False)
        runs[order, rtol] = (float((out.x - ref).abs().max()), out.nfe)
    (loose, loose_nfe), (tight, tight_nfe) = runs[2, 0.05], runs[2, 1e-3]
    assert tight < loose / 10 and tight < 5e-3 and tight_nfe > loose_nfe
    err3, nfe3 = runs[3, 0.05]
    assert err3 < 0.05 and nfe3 < 60  # DPM-Solver-23 at the paper's defaults


def test_searched_grid_beats_the_grid_it_searches_from():
    process = LinearVP()
    model = DATA.denoiser(process, "eps")
    fine = uniform_lambda(process, 40, t_end=1e-3)
    calib = torch.randn(64, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    grid = searched_grid(model, calib, 6, fine)
    assert len(grid) == 7 and grid[0] == fine[0] and grid[-1] == fine[-1]
    assert bool(torch.isin(grid, fine).all()) and bool((grid[1:] < grid[:-1]).all())
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref = DATA.flow(x, fine[0], fine[-1], process)

    def error(g):
        return float((sample(model, x, g, DDIM(), progress=False).x - ref).pow(2).mean().sqrt())

    assert error(grid) < error(uniform_lambda(process, 6, t_end=1e-3))
    assert error(grid) < error(fine[::8].contiguous())  # a naive subsample of the same size

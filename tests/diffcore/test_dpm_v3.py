"""DPM-Solver-v3 and its empirical model statistics; LD3 learned grids."""

import numpy as np
import pytest
import torch

from diffcore.processes import LinearVP
from diffcore.samplers import (
    DDIM,
    DPMSolverPP2M,
    DPMSolverV3,
    LearnedMultistep,
    ModelStatistics,
    UniPC,
    append_zero,
    estimate_statistics,
    fit_multistep,
    learned_grid,
    sample,
    uniform_lambda,
    uniform_t,
)
from diffcore.testing import GaussianData, GaussianMixtureData

PROCESS = LinearVP()
GAUSS = GaussianData.create(torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.5, 1.5, 0.1]))
MIXTURE = GaussianMixtureData(
    weights=torch.tensor([0.3, 0.7], dtype=torch.float64),
    means=torch.tensor([[-1.5, 0.5, 1.0], [1.0, -0.5, 0.0]], dtype=torch.float64),
    stds=torch.tensor([[0.3, 0.5, 0.2], [0.4, 0.2, 0.6]], dtype=torch.float64),
)


def _starts(n, seed):
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.fixture(scope="module")
def mixture_stats():
    model = MIXTURE.denoiser(PROCESS, "eps")
    grid = uniform_lambda(PROCESS, 150, t_end=1e-3)
    return estimate_statistics(
        model, _starts(256, 1), grid, progress=False, generator=torch.Generator().manual_seed(0)
    )


def test_degenerate_statistics_give_ddim():
    model = MIXTURE.denoiser(PROCESS, "eps")
    grid = uniform_lambda(PROCESS, 12, t_end=1e-3)
    stats = ModelStatistics.degenerate(PROCESS.lambda_(grid), (3,))
    x = _starts(32, 2)
    a = sample(model, x, grid, DPMSolverV3(stats, 1, corrector=False), progress=False).x
    b = sample(model, x, grid, DDIM(), progress=False).x
    torch.testing.assert_close(a, b, atol=1e-8, rtol=0)


def test_statistics_are_exact_for_diagonal_gaussian_data():
    # For N(mu, diag(v)) the Jacobian of sigma * eps is diagonal and constant in x:
    # l = sigma^2 / (alpha^2 v + sigma^2), and f = (sigma eps - l x) / alpha does not depend on x.
    model = GAUSS.denoiser(PROCESS, "eps")
    grid = uniform_lambda(PROCESS, 100, t_end=1e-3)
    stats = estimate_statistics(model, _starts(64, 3), grid, progress=False)
    t = PROCESS.t_from_lambda(stats.lambdas)
    a, s = PROCESS.alpha(t)[:, None], PROCESS.sigma(t)[:, None]
    v = torch.tensor([0.5, 1.5, 0.1], dtype=torch.float64) ** 2
    torch.testing.assert_close(stats.l, s**2 / (a**2 * v + s**2), atol=1e-7, rtol=0)
    # then three steps of DPM-Solver-v3 follow the linear ODE up to the statistics' own
    # discretisation (second order in the knot spacing), far better than DPM-Solver++
    x = _starts(64, 4)
    coarse = uniform_lambda(PROCESS, 3, t_end=1e-3)
    exact = GAUSS.flow(x, coarse[0], coarse[-1], PROCESS)
    err_v3 = (sample(model, x, coarse, DPMSolverV3(stats), progress=False).x - exact).abs().max()
    err_pp = (sample(model, x, coarse, DPMSolverPP2M(), progress=False).x - exact).abs().max()
    assert err_v3 < 1e-2 and err_v3 < 0.01 * err_pp


@pytest.mark.parametrize(("order", "expected"), [(1, 2), (2, 3)])
def test_convergence_order_with_corrector(mixture_stats, order, expected):
    model = MIXTURE.denoiser(PROCESS, "eps")
    x = _starts(64, 5)
    ref = sample(model, x, uniform_lambda(PROCESS, 400, t_end=1e-3), UniPC(), progress=False).x
    steps = [8, 16, 32]
    errors = [
        float(
            (
                sample(
                    model,
                    x,
                    uniform_lambda(PROCESS, n, t_end=1e-3),
                    DPMSolverV3(mixture_stats, order),
                    progress=False,
                ).x
                - ref
            )
            .pow(2)
            .mean()
            .sqrt()
        )
        for n in steps
    ]
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - expected) < 0.5, (errors, slope)


def test_statistics_beat_dpm_solver_pp_at_few_steps(mixture_stats):
    model = MIXTURE.denoiser(PROCESS, "eps")
    x = _starts(256, 6)
    fine = append_zero(uniform_lambda(PROCESS, 400, t_end=1e-4))
    ref = sample(model, x, fine, UniPC(), progress=False).x
    grid = uniform_t(PROCESS, 6)
    v3 = sample(model, x, grid, DPMSolverV3(mixture_stats), progress=False).x
    pp = sample(model, x, grid, DPMSolverPP2M(), progress=False).x
    assert (v3 - ref).pow(2).mean() < 0.95 * (pp - ref).pow(2).mean()


def test_statistics_save_and_load(tmp_path, mixture_stats):
    path = mixture_stats.save(tmp_path / "ems.safetensors")
    back = ModelStatistics.load(path)
    for name in ("lambdas", "l", "s", "b"):
        torch.testing.assert_close(getattr(back, name), getattr(mixture_stats, name))
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        ModelStatistics.load(tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError, match="no DPM-Solver-v3 statistics"):
        ModelStatistics.load(tmp_path / "missing.safetensors")


def test_bad_statistics_and_states_are_refused(mixture_stats):
    with pytest.raises(ValueError, match="strictly increasing"):
        ModelStatistics.degenerate(torch.tensor([1.0, 0.0]), (3,))
    lam = torch.tensor([0.0, 1.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="NaN"):
        ModelStatistics(lam, torch.full((2, 3), float("nan")), torch.zeros(2, 3), torch.zeros(2, 3))
    model = MIXTURE.denoiser(PROCESS, "eps")
    grid = uniform_lambda(PROCESS, 4, t_end=1e-3)
    with pytest.raises(ValueError, match="samples of shape"):
        sample(model, torch.zeros(4, 5), grid, DPMSolverV3(mixture_stats), progress=False)
    with pytest.raises(ValueError, match="solver_order"):
        DPMSolverV3(mixture_stats, solver_order=4)
    with pytest.raises(ValueError, match="finite lambda"):
        estimate_statistics(model, _starts(4, 0), append_zero(grid), progress=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_to_sigma_zero_is_finite(mixture_stats, dtype):
    model = MIXTURE.denoiser(PROCESS, "eps")
    x = _starts(16, 7).to(dtype)
    out = sample(model, x, uniform_t(PROCESS, 6), DPMSolverV3(mixture_stats, 3), progress=False)
    assert out.x.dtype == dtype and bool(torch.isfinite(out.x).all())


def test_learned_grid_reduces_error_on_held_out_starts():
    model = MIXTURE.denoiser(PROCESS, "eps")
    fine = append_zero(uniform_lambda(PROCESS, 400, t_end=1e-4))
    calib, held_out = _starts(128, 8), _starts(256, 9)
    teacher = sample(model, calib, fine, UniPC(), progress=False).x
    ref = sample(model, held_out, fine, UniPC(), progress=False).x
    init = uniform_t(PROCESS, 5)
    grid = learned_grid(model, UniPC(), calib, init, teacher=teacher, iterations=40, lr=0.1)
    assert grid.shape == init.shape and grid[0] == init[0] and grid[-1] == 0
    assert bool((grid[1:] < grid[:-1]).all())

    def rmse(g):
        return float((sample(model, held_out, g, UniPC(), progress=False).x - ref).pow(2).mean())

    assert rmse(grid) < 0.7 * rmse(init)


def test_learned_multistep_solver_beats_its_initialisation_on_held_out_starts():
    model = MIXTURE.denoiser(PROCESS, "eps")
    fine = append_zero(uniform_lambda(PROCESS, 400, t_end=1e-4))
    calib, held_out = _starts(512, 10), _starts(256, 11)
    teacher = sample(model, calib, fine, UniPC(), progress=False).x
    ref = sample(model, held_out, fine, UniPC(), progress=False).x
    init = uniform_t(PROCESS, 4)
    rule = fit_multistep(model, calib, init, teacher=teacher, history=2, iterations=40, lr=0.05)
    torch.testing.assert_close(rule.weights.sum(1), torch.ones(4, dtype=torch.float64))
    assert rule.grid[0] == init[0] and rule.grid[-1] == 0

    def mse(g, r):
        return float((sample(model, held_out, g, r, progress=False).x - ref).pow(2).mean())

    assert mse(rule.grid, rule) < 0.7 * mse(init, DPMSolverPP2M())
    back = LearnedMultistep.from_state_dict(rule.state_dict())
    torch.testing.assert_close(back.weights, rule.weights)
    with pytest.raises(ValueError, match="its own grid"):
        sample(model, held_out, init, rule, progress=False)

import numpy as np
import pytest
import torch

from difflab.physics.datasets import generate_ks_dataset, load_ks, save_ks
from difflab.physics.solvers.ks import (
    KSConfig,
    etdrk4_coefficients,
    generate_ks,
    solve_ks,
    solve_ks_scipy,
)


def test_etdrk4_coefficients_match_phi_functions():
    # Away from z = 0 the phi-function formulas are accurate; the contour average must agree.
    c = torch.tensor([-50.0, -3.0, 2.0], dtype=torch.float64)
    h = 0.1
    z = h * c
    coef = etdrk4_coefficients(c, h)
    q = h * (torch.exp(z / 2) - 1) / z
    f1 = h * (-4 - z + torch.exp(z) * (4 - 3 * z + z**2)) / z**3
    torch.testing.assert_close(coef.q, q, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(coef.f1, f1, rtol=1e-10, atol=1e-14)
    # At z = 0 the limits are h/2 and h/6.
    zero = etdrk4_coefficients(torch.zeros(1, dtype=torch.float64), h)
    torch.testing.assert_close(zero.q, torch.tensor([h / 2], dtype=torch.float64))
    torch.testing.assert_close(zero.f1, torch.tensor([h / 6], dtype=torch.float64))


def test_mean_conserved_and_finite():
    cfg = KSConfig(n_steps=50, burn_in=0)
    data = generate_ks(3, cfg, seed=1, progress=False)
    u = data.u
    # A non-zero mean must be conserved too: shift the initial condition.
    shifted = solve_ks(u[:, 0] + 0.3, data.length, dt=0.2, n_steps=50, progress=False)
    assert torch.isfinite(u).all()
    assert (u.mean(-1) - u[:, :1].mean(-1)).abs().max() < 1e-12
    assert (shifted.mean(-1) - 0.3 - u[:, :1].mean(-1)).abs().max() < 1e-12


def test_matches_scipy_radau_short_horizon():
    cfg = KSConfig(n_steps=11, burn_in=0)
    data = generate_ks(2, cfg, seed=0, progress=False)
    t = np.arange(cfg.n_steps) * cfg.dt
    for b in range(2):
        ref = solve_ks_scipy(data.u[b, 0].numpy(), float(data.length[b]), t, rtol=1e-10, atol=1e-12)
        err = np.abs(ref - data.u[b].numpy()).max()
        assert err < 1e-4, err


def test_etdrk4_fourth_order():
    data = generate_ks(1, KSConfig(n_steps=2, burn_in=0), seed=3, progress=False)
    u0, length = data.u[:, 0], data.length
    ref = solve_ks(u0, length, dt=1.0, n_steps=2, substeps=64, progress=False)[:, -1]
    errs = [
        (solve_ks(u0, length, dt=1.0, n_steps=2, substeps=s, progress=False)[:, -1] - ref)
        .abs()
        .max()
        for s in (4, 8)
    ]
    assert float(errs[0] / errs[1]) > 10  # 2^4 = 16 for a fourth-order method


def test_generation_independent_of_rank_split(tmp_path):
    cfg = KSConfig(n_steps=3, burn_in=2)
    full = generate_ks(5, cfg, seed=7, progress=False)
    parts = [generate_ks(range(r, 5, 2), cfg, seed=7, progress=False) for r in range(2)]
    for r, part in enumerate(parts):
        save_ks(tmp_path, "train", part, part=r)
    loaded = load_ks(tmp_path, "train")
    assert loaded.index.tolist() == list(range(5))
    torch.testing.assert_close(loaded.u, full.u.float())
    torch.testing.assert_close(loaded.length, full.length)
    assert loaded.dt == pytest.approx(0.2)


def test_dataset_round_trip_and_lengths(tmp_path):
    cfg = KSConfig(n_steps=4, burn_in=1)
    meta = generate_ks_dataset(tmp_path, (3, 1, 2), cfg, seed=0, progress=False)
    assert meta["sizes"] == {"train": 3, "valid": 1, "test": 2}
    test = load_ks(tmp_path, "test")
    assert test.u.shape == (2, 4, 256)
    assert ((test.length >= 64 * 0.9) & (test.length <= 64 * 1.1)).all()
    with pytest.raises(FileNotFoundError, match="ks generate"):
        load_ks(tmp_path / "nothing", "train")


def test_longer_evaluation_trajectories_extend_the_same_trajectories(tmp_path):
    # PDE-Refiner tests on 640-step trajectories while training on 140 steps; a test
    # trajectory only depends on (seed, split, index), so the longer one extends the shorter.
    cfg = KSConfig(n_points=32, length=16.0, n_steps=3, burn_in=2)
    meta = generate_ks_dataset(tmp_path / "a", (2, 1, 2), cfg, eval_steps=7, progress=False)
    assert meta["steps"] == {"train": 3, "valid": 7, "test": 7}
    generate_ks_dataset(tmp_path / "b", (0, 0, 2), cfg, progress=False)
    long, short = load_ks(tmp_path / "a", "test"), load_ks(tmp_path / "b", "test")
    assert load_ks(tmp_path / "a", "train").u.shape == (2, 3, 32)
    assert long.u.shape == (2, 7, 32) and short.u.shape == (2, 3, 32)
    torch.testing.assert_close(long.u[:, :3], short.u)
    with pytest.raises(ValueError, match="eval_steps"):
        generate_ks_dataset(tmp_path / "c", (1, 0, 0), cfg, eval_steps=0, progress=False)
    with pytest.raises(ValueError, match="unknown splits"):
        generate_ks_dataset(tmp_path / "c", {"tset": 1}, cfg, progress=False)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="shape"):
        solve_ks(torch.zeros(4), 64.0, dt=0.2, n_steps=1)
    with pytest.raises(ValueError, match="non-finite"):
        solve_ks(torch.full((1, 8), float("nan"), dtype=torch.float64), 64.0, dt=0.2, n_steps=1)

"""PDE-Refiner vs the MSE baseline on held-out KS trajectories (CPU budget run).

Run: ``nice uv run pytest tests/physics/test_pde_refiner_slow.py -m slow -s``. Sizes follow the
``cpu`` preset (64-point KS grid, L = 64 +- 10%, dt = 0.2, 140 steps after a 360-step burn-in);
``DIFFLAB_KS_SLOW_STEPS`` overrides the training steps of each model.

Measured on 2026-11-28 (2 shared CPU cores, nice, 800 steps per model, 12 min 56 s wall in
all): time until correlation < 0.8 of 15.7 s for the MSE baseline and 11.3 s for PDE-Refiner
(refinement itself helps: 11.0 s with only its k = 0 step), so the claim does not hold at this
budget: the refiner trains its k = 0 (MSE) step on a quarter of the samples, and its one-step
MSE is 2.0e-4 against the baseline's 2.8e-5. The paper trains for hundreds of epochs.
"""

import json
import os
import time

import pytest

from difflab.physics.datasets import generate_ks_dataset, load_ks
from difflab.physics.pde_refiner import evaluate, get_preset, train
from difflab.physics.solvers.ks import KSConfig


@pytest.mark.slow
@pytest.mark.xfail(
    reason="at the 800-step CPU budget the refiner's one-step prediction is undertrained "
    "(measured 11.3 s vs the MSE baseline's 15.7 s); raise DIFFLAB_KS_SLOW_STEPS",
    strict=False,
)
def test_refiner_outlasts_mse_baseline(tmp_path):
    start = time.perf_counter()
    steps = int(os.environ.get("DIFFLAB_KS_SLOW_STEPS", "800"))
    data = tmp_path / "ks"
    generate_ks_dataset(data, (128, 0, 32), KSConfig(n_points=64), seed=0, progress=False)
    test = load_ks(data, "test")
    results = {}
    for method in ("mse", "refiner"):
        t0 = time.perf_counter()
        cfg = get_preset("cpu", method=method, steps=steps)
        model = train(cfg, data, tmp_path / method, seed=0, progress=False)
        results[method] = evaluate(
            model,
            test,
            seed=0,
            members=4 if method == "refiner" else 0,
            out_dir=tmp_path / method / "eval",
            progress=False,
        )
        results[method]["wall_s"] = round(time.perf_counter() - t0, 1)
    results["total_wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(results, indent=2))
    assert results["refiner"]["corr_time_0.8"] > results["mse"]["corr_time_0.8"]

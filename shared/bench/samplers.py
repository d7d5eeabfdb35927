"""Sampler accuracy per network evaluation, against diffusers and k-diffusion.

Exact Gaussian-mixture data in dimension 8 under DDPM's discrete linear schedule (1000 steps,
betas 1e-4..2e-2) with the exact eps in closed form, so the only error left is the solver's.
Every sampler starts from the same noise at t = 1 (timestep 999) and ends at sigma = 0; the
reference endpoint is a 2000-step third-order solve (its own error is printed). Samplers fitted to
the model (searched grids, DPM-Solver-v3 statistics, learned multistep solvers) are fitted on
calibration starts drawn with another seed. For each NFE
budget the table gives the pathwise RMSE to the reference, and then the per-step overhead of the
update alone (no network), ours vs diffusers' ``step``.

Run: ``uv run nox -s bench -- shared/bench/samplers.py`` (or ``uv run --group bench python
shared/bench/samplers.py``). Writes bench-results/samplers.json.
"""

from __future__ import annotations

import json
import math
import platform
import time
import warnings
from pathlib import Path

import torch

from diffcore.predictions import Denoiser
from diffcore.processes import DiscreteVP
from diffcore.samplers import (
    DDIM,
    DPMSolverPP2M,
    DPMSolverPP3M,
    DPMSolverV3,
    UniPC,
    append_zero,
    estimate_statistics,
    fit_multistep,
    karras,
    quadratic_t,
    sample,
    searched_grid,
    uniform_lambda,
    uniform_t,
)
from diffcore.testing import GaussianMixtureData

NFES = (5, 6, 8, 10, 15, 20)
D, K, BATCH = 8, 4, 512
T_END = 1e-3  # lambda grids stop here; the last step goes to sigma = 0

F64 = torch.float64
PROCESS = DiscreteVP.linear(1000, 1e-4, 2e-2)


def make_data() -> GaussianMixtureData:
    g = torch.Generator().manual_seed(0)
    return GaussianMixtureData(
        weights=torch.rand(K, generator=g) + 0.5,
        means=torch.randn(K, D, generator=g) * 1.5,
        stds=torch.rand(K, D, generator=g) * 0.4 + 0.1,
    )


DATA = make_data()


def eps_at(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Exact eps(x, t) for continuous t (shared by every sampler)."""
    t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
    if t.numel() == 1:
        t = t.expand(x.shape[0])
    a, s = PROCESS.alpha(t), PROCESS.sigma(t)
    x0 = DATA.x0(x, a, s)
    return (x - a[:, None] * x0) / s[:, None]


def ours(rule, grid, z):
    model = Denoiser(lambda x, t: eps_at(x, t), "eps", PROCESS)
    out = sample(model, z, grid, rule, progress=False)
    return out.x, out.nfe


CALIB = torch.randn(2048, D, generator=torch.Generator().manual_seed(7), dtype=F64)
_FITTED: dict[str, object] = {}


def _calibration():
    """Teacher endpoints and DPM-Solver-v3 statistics from the calibration starts (cached).

    Calibration starts are drawn with another seed than the evaluation starts; whatever is
    fitted on them (statistics, grids, solver weights) is scored on the evaluation starts.
    """
    if not _FITTED:
        model = Denoiser(lambda x, t: eps_at(x, t), "eps", PROCESS)
        ref_grid = append_zero(uniform_lambda(PROCESS, 2000, t_end=1e-4))
        _FITTED["teacher"] = sample(model, CALIB, ref_grid, DPMSolverPP3M(), progress=False).x
        _FITTED["ems"] = estimate_statistics(
            model,
            CALIB[:512],
            uniform_lambda(PROCESS, 200, t_end=T_END),
            generator=torch.Generator().manual_seed(0),
            progress=False,
        )
    return _FITTED["teacher"], _FITTED["ems"]


def our_candidates(nfe: int):
    """(name, rule, grid) whose NFE equals ``nfe``; grids end with a final step to sigma = 0.

    Fitted to the model on calibration starts (never the evaluation starts): the GITS-style
    searched grid (256 starts), DPM-Solver-v3's empirical model statistics (512 starts) and
    the learned multistep solver (S4S/LD3-style: times and weights fitted to teacher endpoints
    from 2048 starts).
    """
    model = Denoiser(lambda x, t: eps_at(x, t), "eps", PROCESS)
    teacher, ems = _calibration()
    learned = fit_multistep(
        model, CALIB, uniform_t(PROCESS, nfe), history=2, teacher=teacher, iterations=150, lr=0.05
    )
    yield "ours learned multistep (S4S/LD3)", learned, learned.grid
    yield "ours DPM-Solver-v3 uniform-t", DPMSolverV3(ems), uniform_t(PROCESS, nfe)
    yield (
        "ours DPM-Solver-v3 logSNR",
        DPMSolverV3(ems),
        append_zero(uniform_lambda(PROCESS, nfe - 1, t_end=T_END)),
    )
    fine = append_zero(uniform_lambda(PROCESS, 99, t_end=T_END))
    searched = searched_grid(model, CALIB[:256], nfe, fine)
    yield "ours UniPC-2 searched", UniPC(), searched
    yield "ours DPM++(3M) searched", DPMSolverPP3M(), searched
    for name, rule in (
        ("UniPC-2", UniPC()),
        ("DPM++(3M)", DPMSolverPP3M()),
        ("DPM++(2M)", DPMSolverPP2M()),
    ):
        yield (
            f"ours {name} logSNR",
            rule,
            append_zero(uniform_lambda(PROCESS, nfe - 1, t_end=T_END)),
        )
        yield (
            f"ours {name} quadratic-t",
            rule,
            append_zero(quadratic_t(PROCESS, nfe - 1, t_end=T_END)),
        )
        yield f"ours {name} karras", rule, append_zero(karras(PROCESS, nfe - 1, t_end=T_END))
        yield f"ours {name} uniform-t", rule, uniform_t(PROCESS, nfe)
    yield "ours DDIM uniform-t", DDIM(), uniform_t(PROCESS, nfe)


def diffusers_runs(nfe: int, z: torch.Tensor):
    import diffusers

    common = dict(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=2e-2,
        beta_schedule="linear",
        timestep_spacing="trailing",
        prediction_type="epsilon",
    )
    makers = {
        "diffusers DDIM": lambda: diffusers.DDIMScheduler(**common, set_alpha_to_one=True),
        "diffusers DPM++2M": lambda: diffusers.DPMSolverMultistepScheduler(
            **common, solver_order=2
        ),
        "diffusers DPM++3M": lambda: diffusers.DPMSolverMultistepScheduler(
            **common, solver_order=3
        ),
        "diffusers UniPC": lambda: diffusers.UniPCMultistepScheduler(**common),
        "diffusers DEIS": lambda: diffusers.DEISMultistepScheduler(**common),
        "diffusers Euler": lambda: diffusers.EulerDiscreteScheduler(**common),
        "diffusers Heun": lambda: diffusers.HeunDiscreteScheduler(**common),
    }
    for name, make in makers.items():
        sched = make()
        steps = (nfe + 1) // 2 if "Heun" in name else nfe
        sched.set_timesteps(steps)
        x = z * float(sched.init_noise_sigma)  # Euler/Heun work in VE scale: x_ve = x_vp / alpha
        used = 0
        for t in sched.timesteps:
            xin = sched.scale_model_input(x, t)
            eps = eps_at(xin, (torch.as_tensor(t, dtype=torch.float64) + 1) / 1000)
            used += 1
            x = sched.step(eps, t, x).prev_sample
        yield name, x, used


def kdiffusion_runs(nfe: int, z: torch.Tensor):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import k_diffusion.sampling as ks

    def denoiser(x, sigma):
        sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(x.shape[0])
        t = PROCESS.t_from_lambda(-torch.log(sigma))
        x_vp = x / torch.sqrt(1 + sigma**2)[:, None]
        return x - sigma[:, None] * eps_at(x_vp, t)

    s_min = float(
        PROCESS.sigma(torch.tensor(T_END, dtype=F64))
        / PROCESS.alpha(torch.tensor(T_END, dtype=F64))
    )
    s_max = float(
        PROCESS.sigma(torch.tensor(1.0, dtype=F64)) / PROCESS.alpha(torch.tensor(1.0, dtype=F64))
    )
    x_start = z / float(PROCESS.alpha(torch.tensor(1.0, dtype=F64)))  # same start x_vp = z
    runs = {
        "k-diff euler": (ks.sample_euler, nfe),
        "k-diff heun": (ks.sample_heun, (nfe + 1) // 2),
        "k-diff dpm_2": (ks.sample_dpm_2, (nfe + 1) // 2),
        "k-diff lms": (ks.sample_lms, nfe),
        "k-diff dpmpp_2m": (ks.sample_dpmpp_2m, nfe),
    }
    for name, (fn, n) in runs.items():
        count = [0]

        def counted(x, sigma, count=count, **kw):
            count[0] += 1
            return denoiser(x, sigma)

        sigmas = ks.get_sigmas_karras(n, s_min, s_max, rho=7.0, device="cpu").to(torch.float64)
        x = fn(counted, x_start.clone(), sigmas, disable=True)
        yield name, x, count[0]


def rmse(a, b) -> float:
    return float((a - b).pow(2).mean().sqrt())


def step_overhead(repeats: int = 200, rounds: int = 5) -> dict[str, float]:
    """Microseconds per update with the network removed (a constant eps).

    Ours and diffusers' run alternately ``rounds`` times; each reports its fastest round, so a
    busy machine penalises neither side.
    """
    import diffusers

    x = torch.randn(BATCH, D, dtype=F64)
    eps = torch.randn(BATCH, D, dtype=F64)
    model = Denoiser(lambda xx, tt: eps, "eps", PROCESS)
    grid = uniform_t(PROCESS, repeats, t_end=T_END)

    def theirs_once() -> float:
        sched = diffusers.DPMSolverMultistepScheduler(
            num_train_timesteps=1000,
            beta_start=1e-4,
            beta_end=2e-2,
            beta_schedule="linear",
            timestep_spacing="trailing",
        )
        sched.set_timesteps(repeats)
        t0 = time.perf_counter()
        y = x
        for t in sched.timesteps:
            y = sched.step(eps, t, y).prev_sample
        return (time.perf_counter() - t0) / len(sched.timesteps) * 1e6

    def ours_once() -> float:
        t0 = time.perf_counter()
        sample(model, x, grid, DPMSolverPP2M(), progress=False, check_finite=False)
        return (time.perf_counter() - t0) / repeats * 1e6

    mine, theirs = [], []
    for _ in range(rounds):
        mine.append(ours_once())
        theirs.append(theirs_once())
    return {"ours DPM++(2M) us/step": min(mine), "diffusers DPM++2M us/step": min(theirs)}


def main() -> None:
    z = torch.randn(BATCH, D, generator=torch.Generator().manual_seed(1), dtype=F64)
    ref_grid = append_zero(uniform_lambda(PROCESS, 2000, t_end=1e-4))
    ref, _ = ours(DPMSolverPP3M(), ref_grid, z)
    ref_half, _ = ours(DPMSolverPP3M(), append_zero(uniform_lambda(PROCESS, 1000, t_end=1e-4)), z)
    print(f"device cpu | torch {torch.__version__} | python {platform.python_version()}")
    print(f"reference self-check (1000 vs 2000 steps): RMSE {rmse(ref, ref_half):.2e}")
    table: dict[str, dict[int, float]] = {}
    for nfe in NFES:
        for name, rule, grid in our_candidates(nfe):
            x, used = ours(rule, grid, z)
            assert used == nfe, (name, used, nfe)
            table.setdefault(name, {})[nfe] = rmse(x, ref)
        for name, x, used in diffusers_runs(nfe, z):
            table.setdefault(name, {})[nfe] = rmse(x, ref) if used <= nfe else float("nan")
        for name, x, used in kdiffusion_runs(nfe, z):
            table.setdefault(name, {})[nfe] = rmse(x, ref) if used <= nfe else float("nan")
    header = f"{'sampler':34s}" + "".join(f"{f'NFE {n}':>10s}" for n in NFES)
    print(header)
    for name, row in table.items():
        print(f"{name:34s}" + "".join(f"{row.get(n, float('nan')):10.2e}" for n in NFES))
    ratios = {}
    for n in NFES:
        best_ours = min(v[n] for k, v in table.items() if k.startswith("ours"))
        best_peer = min(
            v[n] for k, v in table.items() if not k.startswith("ours") and not math.isnan(v[n])
        )
        ratios[n] = best_ours / best_peer
    print(
        "best ours / best peer RMSE: " + ", ".join(f"NFE {n}: {r:.2f}" for n, r in ratios.items())
    )
    overhead = step_overhead()
    ratio = overhead["ours DPM++(2M) us/step"] / overhead["diffusers DPM++2M us/step"]
    print(
        "per-step overhead: "
        + ", ".join(f"{k} {v:.0f}" for k, v in overhead.items())
        + f" (ours / diffusers {ratio:.2f})"
    )
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "samplers.json").write_text(
        json.dumps(
            {"rmse": table, "ratio_best_ours_to_best_peer": ratios, "overhead": overhead}, indent=2
        )
    )


if __name__ == "__main__":
    main()

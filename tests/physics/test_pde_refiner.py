import math

import pytest
import torch

from difflab.physics.metrics import correlation_time, pearson_per_step, rollout_metrics
from difflab.physics.pde_refiner import PDERefiner, RefinerSchedule, get_preset, make_pairs
from difflab.physics.solvers.ks import KSConfig, generate_ks

N = 32


def _model(method="refiner", **kw):
    cfg = get_preset("quick", n_points=N, method=method, **kw)
    return PDERefiner(cfg, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("parameterization", ["variance", "std"])
def test_schedule_matches_definition(parameterization):
    sched = RefinerSchedule(steps=3, min_noise_std=4e-7, parameterization=parameterization)
    k = torch.arange(4, dtype=torch.float64)
    levels = torch.tensor([4e-7 ** (i / 3) for i in range(4)], dtype=torch.float64)
    expected = levels.sqrt() if parameterization == "variance" else levels
    torch.testing.assert_close(sched.sigma(k), expected)
    assert float(sched.sigma(k)[0]) == 1.0 and float(sched.alpha(k)[0]) == 0.0
    torch.testing.assert_close(
        sched.alpha(k) ** 2 + sched.sigma(k) ** 2, torch.ones(4, dtype=torch.float64)
    )


def test_variance_schedule_matches_pdearena_ddpm_betas():
    # PDEArena passes betas = sigma_min ** (j / K), j = K..0, to DDPM; its noise variance at
    # scheduler index K - k is 1 - prod(1 - beta). Ours equals it up to O(sigma^4).
    K, smin = 3, 4e-7
    betas = torch.tensor([smin ** (j / K) for j in reversed(range(K + 1))], dtype=torch.float64)
    ddpm_var = 1 - torch.cumprod(1 - betas, 0)  # index 0 = finest
    sched = RefinerSchedule(steps=K, min_noise_std=smin)
    ours = sched.sigma(torch.arange(K + 1, dtype=torch.float64)).flip(0) ** 2
    torch.testing.assert_close(ours, ddpm_var, rtol=1e-2, atol=0)


def test_v_loss_matches_definition():
    model = _model()
    b = 4
    batch = {
        "history": torch.randn(b, 1, N),
        "next": torch.randn(b, N),
        "params": torch.tensor([[64.0, 0.25, 0.2]]).repeat(b, 1),
    }
    gen = torch.Generator().manual_seed(3)
    loss = model.loss(batch, generator=gen)
    # Recompute by hand with the same draws: k ~ U{0..K}, eps ~ N(0, 1).
    gen = torch.Generator().manual_seed(3)
    k = torch.randint(0, 4, (b,), generator=gen).double()
    target = ((batch["next"] - batch["history"][:, -1]) / 0.3)[:, None]  # difference_weight
    eps = torch.randn(target.shape, generator=gen)
    sigma = (4e-7 ** (k / 6)).float()[:, None, None]  # variance 4e-7 ** (k / 3)
    alpha = (1 - sigma**2).clamp_min(0).sqrt()
    x_k = alpha * target + sigma * eps
    out = model.net(x_k, k.float(), history=batch["history"] / model.u_std, params=batch["params"])
    v = alpha * eps - sigma * target
    torch.testing.assert_close(loss, ((out - v) ** 2).mean(), rtol=1e-5, atol=1e-6)
    # At k = 0 the v-target is -target: the MSE step.
    assert torch.allclose(v[k == 0], -target[k == 0])


def test_eps_and_mse_losses_run():
    batch = {
        "history": torch.randn(3, 1, N),
        "next": torch.randn(3, N),
        "params": torch.tensor([[64.0, 0.25, 0.2]]).repeat(3, 1),
    }
    for model in (_model(prediction="eps"), _model("mse")):
        loss = model.loss(batch, generator=torch.Generator().manual_seed(0))
        assert loss.ndim == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("method", ["refiner", "mse"])
def test_rollout_deterministic_under_seed(method):
    model = _model(method).eval()
    init = torch.randn(2, 1, N)
    length = torch.tensor([60.0, 66.0])
    a = model.rollout(init, length, 0.2, 5, generator=torch.Generator().manual_seed(1))
    b = model.rollout(init, length, 0.2, 5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 5, N)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_ensemble_shape_and_spread():
    model = _model().eval()
    # Make the untrained network's output depend on its noisy input so members differ.
    with torch.no_grad():
        torch.nn.init.normal_(model.net.unet.out.weight, std=0.1)
    ens = model.ensemble_rollout(
        torch.randn(2, 1, N),
        torch.tensor([64.0, 64.0]),
        0.2,
        3,
        4,
        generator=torch.Generator().manual_seed(0),
    )
    assert ens.shape == (4, 2, 3, N)
    assert (ens[0] - ens[1]).abs().max() > 0


def test_prediction_commutes_with_periodic_shifts():
    # The KS domain is periodic and the U-Net pads circularly: shifting the input state by a
    # multiple of the coarsest grid spacing shifts the prediction (no boundary anywhere).
    model = _model("mse").double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    u = torch.randn(2, 1, N, dtype=torch.float64)
    length = torch.tensor([60.0, 66.0])
    y = model.predict_next(u, length, 0.2)
    torch.testing.assert_close(model.predict_next(u.roll(6, -1), length, 0.2), y.roll(6, -1))
    assert (y - u[:, 0]).abs().max() > 1e-3  # the network does act


def test_zeros_first_step_input_ignores_the_noise_at_k0_only():
    model = _model(first_step_input="zeros").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
    hist, params = torch.randn(3, 1, N), torch.tensor([[64.0, 2.0, 0.2]]).repeat(3, 1)
    x = torch.randn(3, 1, N)
    k0, k1 = torch.zeros(3), torch.ones(3)
    at0 = model.net(x, k0, history=hist, params=params)
    torch.testing.assert_close(at0, model.net(torch.zeros_like(x), k0, history=hist, params=params))
    at1 = model.net(x, k1, history=hist, params=params)
    assert (
        at1 - model.net(torch.zeros_like(x), k1, history=hist, params=params)
    ).abs().max() > 1e-3
    # Mixed batches: only the k = 0 rows are masked.
    mixed = model.net(x, torch.tensor([0.0, 1.0, 0.0]), history=hist, params=params)
    torch.testing.assert_close(mixed[1], model.net(x, k1, history=hist, params=params)[1])
    with pytest.raises(ValueError, match="first_step_input"):
        get_preset("quick", first_step_input="ones")


@pytest.mark.parametrize("method", ["refiner", "mse"])
def test_conserve_mean_keeps_the_spatial_mean(method):
    model = _model(method, conserve_mean=True).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    u = torch.randn(2, 1, N) + torch.tensor([[[0.5]], [[-1.0]]])
    out = model.rollout(u, torch.tensor([60.0, 66.0]), 0.2, 4, generator=torch.Generator())
    torch.testing.assert_close(out.mean(-1), u.mean(-1).expand(2, 4), rtol=0, atol=1e-5)
    free = _model(method).eval()
    free.load_state_dict(model.state_dict())  # same weights, no projection: the mean drifts
    drift = free.rollout(u, torch.tensor([60.0, 66.0]), 0.2, 4, generator=torch.Generator())
    assert (drift.mean(-1) - u.mean(-1)).abs().max() > 1e-3


def test_make_pairs():
    data = generate_ks(
        2, KSConfig(n_points=N, n_steps=5, burn_in=0, length=16.0), seed=0, progress=False
    )
    pairs = make_pairs(data, history=2)
    assert pairs["history"].shape == (2 * 3, 2, N) and pairs["next"].shape == (6, N)
    torch.testing.assert_close(pairs["next"][1], data.u[0, 3].float())
    torch.testing.assert_close(pairs["history"][1], data.u[0, 1:3].float())


def test_metrics_definitions():
    x = torch.linspace(0, 2 * math.pi, 65)[:-1]
    target = torch.sin(x).expand(1, 4, -1)
    noise = torch.cos(3 * x).expand(1, 4, -1) * torch.tensor([0.0, 0.3, 1.0, 3.0])[None, :, None]
    pred = target + noise
    corr = pearson_per_step(pred, target)[0]
    expected = 1 / torch.sqrt(1 + torch.tensor([0.0, 0.3, 1.0, 3.0]) ** 2)
    torch.testing.assert_close(corr, expected, rtol=1e-5, atol=1e-6)
    assert correlation_time(corr, 0.8, dt=0.2).item() == pytest.approx(0.4)
    assert correlation_time(torch.ones(5), 0.8, dt=0.2).item() == pytest.approx(1.0)
    m = rollout_metrics(pred, target, dt=0.2)
    assert m.mse[0, 0] == 0 and m.error_spectrum.shape == (4, 33)
    assert m.error_spectrum[-1].argmax() == 3
    assert set(m.summary()) >= {"corr_time_0.8", "one_step_mse", "unrolled_mse"}

"""FlowChef on a rectified flow with the exact Gaussian-mixture velocity."""

import pytest
import torch

from diffcore.guidance import FlowChef
from diffcore.predictions import Denoiser
from diffcore.processes import RectifiedFlow
from diffcore.samplers import Euler, sample, uniform_t
from diffcore.testing import GaussianMixtureData

F64 = torch.float64
RF = RectifiedFlow()
DATA = GaussianMixtureData(
    weights=torch.tensor([0.5, 0.3, 0.2], dtype=F64),
    means=torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]], dtype=F64),
    stds=torch.full((3, 2), 0.4, dtype=F64),
)
GRID = uniform_t(RF, 30)


def cost(x0):
    return (x0[:, 0] - 2.0) ** 2  # "be on the right": the mode at (2, 0)


def start(n=1000):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=F64)


def test_steering_lowers_the_cost_and_stays_in_support():
    model = DATA.denoiser(RF, "velocity")
    plain = sample(model, start(), GRID, Euler(), progress=False).x
    steered = sample(model, start(), GRID, FlowChef(cost, 0.1), progress=False).x
    c0, c1 = float(cost(plain).mean()), float(cost(steered).mean())
    lp = DATA.log_prob(steered)
    # 3 std from the right mode's centre in one coordinate: log p ~ -5.7
    inside = float((lp > -5.7).double().mean())
    print(f"\nFlowChef: cost {c1:.4f} (unguided {c0:.3f}), in support {inside:.3f}")
    assert c1 < 0.01 * c0
    assert inside > 0.95
    # the free coordinate keeps the mode's spread (0.4): steered, not collapsed
    assert abs(float(steered[:, 1][steered[:, 1].abs() < 1.5].std()) - 0.4) < 0.05


def test_zero_step_is_euler_and_the_network_is_never_differentiated():
    exact = DATA.denoiser(RF, "velocity")

    def net(x, t):
        assert not x.requires_grad, "FlowChef must not backpropagate through the model"
        return exact.net(x, t)

    model = Denoiser(net, "velocity", RF)
    plain = sample(model, start(64), GRID, Euler(), progress=False).x
    zero = sample(model, start(64), GRID, FlowChef(cost, 0.0), progress=False)
    torch.testing.assert_close(zero.x, plain, rtol=0, atol=0)
    assert zero.nfe == 30  # one evaluation per step
    steered = sample(model, start(64), GRID, FlowChef(cost, 0.1, n_inner=3), progress=False)
    assert steered.nfe == 30


def test_bad_cost_and_settings_are_named():
    model = DATA.denoiser(RF, "velocity")
    with pytest.raises(ValueError, match="one value per sample"):
        sample(model, start(4), GRID, FlowChef(lambda x0: x0.sum(), 0.1), progress=False)
    with pytest.raises(ValueError, match="n_inner"):
        FlowChef(cost, 0.1, n_inner=0)

"""SVDD (soft value-based decoding) on a 2-D Gaussian mixture with exact denoisers.

The reward prefers one mode; SVDD must raise the mean reward far above the pretrained sampler
while its samples stay where the data density is high (PM: reward of the posterior mean; MC: a
regressor fitted on rollouts of the pretrained sampler).
"""

import pytest
import torch
from torch import nn

from diffcore.guidance import SVDD, PosteriorMeanValue, RegressedValue, fit_value, rollout_values
from diffcore.predictions import Denoiser
from diffcore.processes import LinearVP
from diffcore.samplers import DDIM, DDPMAncestral, SDEDPMSolverPP2M, sample, uniform_t
from diffcore.testing import GaussianMixtureData

F64 = torch.float64
PROCESS = LinearVP()
DATA = GaussianMixtureData(
    weights=torch.tensor([0.5, 0.3, 0.2], dtype=F64),
    means=torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]], dtype=F64),
    stds=torch.full((3, 2), 0.4, dtype=F64),
)
TARGET = torch.tensor([2.0, 0.0], dtype=F64)
GRID = uniform_t(PROCESS, 30, t_end=0.0)
SUPPORT = -4.0  # log p of a point 2 std from a mode centre is about -1.2 - 2 - 0.6 = -3.8


def reward(x):
    return -(x - TARGET).norm(dim=1)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def start(n=500, seed=0):
    return torch.randn(n, 2, generator=gen(seed), dtype=F64)


def run(rule, model=None, n=500):
    model = model or DATA.denoiser(PROCESS, "eps")
    return sample(model, start(n), GRID, rule, generator=gen(1), progress=False)


class ValueNet(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        torch.manual_seed(0)  # reproducible initialisation for the test
        self.net = nn.Sequential(
            nn.Linear(3, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 1),
        ).double()

    def forward(self, x, t):
        return self.net(torch.cat([x, 2 * t[:, None].to(x.dtype) - 1], 1))[:, 0]


def report(name, xs, base):
    r, r0 = float(reward(xs).mean()), float(reward(base).mean())
    inside = float((DATA.log_prob(xs) > SUPPORT).double().mean())
    inside0 = float((DATA.log_prob(base) > SUPPORT).double().mean())
    print(
        f"\n{name}: mean reward {r:.3f} (pretrained {r0:.3f}), "
        f"in support {inside:.3f} ({inside0:.3f})"
    )
    return r, r0, inside


def test_svdd_pm_raises_the_reward_in_support():
    base = run(DDPMAncestral()).x
    out = run(SVDD(DDPMAncestral(), PosteriorMeanValue(reward), n_candidates=8))
    r, r0, inside = report("SVDD-PM", out.x, base)
    assert r > r0 + 2.0 and inside > 0.95
    # one network call at x_t0 serves all candidates; the values add one per step but the last
    assert out.nfe == 2 * 30 - 1


def test_svdd_mc_raises_the_reward_in_support():
    model = DATA.denoiser(PROCESS, "eps")
    data = rollout_values(
        model, start(500, seed=5), GRID, DDPMAncestral(), reward, generator=gen(6)
    )
    assert data.t.shape == (31 * 500,) and data.reward.shape == (31 * 500,)
    net = ValueNet()
    losses = fit_value(net, data, steps=300, lr=1e-2, batch=256, generator=gen(7))
    assert sum(losses[-30:]) / 30 < 0.8 * sum(losses[:30]) / 30
    base = run(DDPMAncestral()).x
    out = run(SVDD(DDPMAncestral(), RegressedValue(net, reward), n_candidates=8))
    r, r0, inside = report("SVDD-MC", out.x, base)
    assert r > r0 + 1.5 and inside > 0.95


def test_one_candidate_is_the_pretrained_sampler_and_temperature_is_seeded():
    base = run(DDPMAncestral(), n=64).x
    one = run(SVDD(DDPMAncestral(), PosteriorMeanValue(reward), n_candidates=1), n=64).x
    torch.testing.assert_close(one, base, rtol=0, atol=0)
    soft = SVDD(DDIM(eta=1.0), PosteriorMeanValue(reward), n_candidates=4, alpha=0.5)
    torch.testing.assert_close(run(soft, n=64).x, run(soft, n=64).x, rtol=0, atol=0)


def test_tree_states_select_one_candidate_for_all_leaves():
    exact = DATA.denoiser(PROCESS, "eps")

    def net(x, t):
        return (exact.net(x[0], t), exact.net(x[1], t))

    model = Denoiser(net, ("eps", "eps"), (PROCESS, PROCESS))
    x = (start(32), start(32, seed=3))
    value = PosteriorMeanValue(lambda s: reward(s[0]) + reward(s[1]))
    base = sample(model, x, GRID, DDPMAncestral(), generator=gen(1), progress=False).x
    one = sample(
        model, x, GRID, SVDD(DDPMAncestral(), value, 1), generator=gen(1), progress=False
    ).x
    for a, b in zip(one, base, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    out = sample(model, x, GRID, SVDD(DDPMAncestral(), value, 6), generator=gen(1), progress=False)
    assert float(value.reward(out.x).mean()) > float(value.reward(base).mean()) + 2


def test_bad_rules_are_named():
    with pytest.raises(ValueError, match="deterministic"):
        SVDD(DDIM(), PosteriorMeanValue(reward))
    with pytest.raises(TypeError, match="one-step rule"):
        run(SVDD(SDEDPMSolverPP2M(), PosteriorMeanValue(reward)), n=4)
    with pytest.raises(ValueError, match="one value per candidate"):
        run(SVDD(DDPMAncestral(), lambda m, x, t: torch.zeros(1, dtype=F64)), n=4)

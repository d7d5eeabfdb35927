import pytest
import torch

from diffcore.objectives import (
    WEIGHTINGS,
    DenoisingScoreMatching,
    FlowMatching,
    LogitNormalTime,
    UniformTime,
    UShapedTime,
    reflow_pairs,
)
from diffcore.predictions import KINDS
from diffcore.processes import EDM, LinearInterpolant, LinearVP, RectifiedFlow
from diffcore.testing import GaussianData

DATA = GaussianData.create(torch.tensor([0.5, -1.0]), torch.tensor([0.7, 1.3]))


def exact_net(process, kind):
    return DATA.denoiser(process, kind).net


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_dsm_optimum_is_the_exact_denoiser(kind, weighting):
    # The DSM loss is minimised by E[target | x_t]; its value there equals the irreducible
    # variance, so any perturbation of the exact network must raise it.
    process = EDM() if weighting == "edm" else LinearVP()
    obj = DenoisingScoreMatching(process, kind, weighting)
    x0 = DATA.sample(4096, generator=torch.Generator().manual_seed(0))
    t = (
        torch.rand(4096, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.9
        + 0.05
    )
    t = t * 5.0 if weighting == "edm" else t  # EDM: sigma in [0.25, 4.75]
    net = exact_net(process, kind)
    base = obj.loss(net, x0, t=t, generator=torch.Generator().manual_seed(2))
    worse = obj.loss(
        lambda x, tt: net(x, tt) + 0.5, x0, t=t, generator=torch.Generator().manual_seed(2)
    )
    assert float(worse) > float(base)


def test_dsm_is_zero_when_target_is_deterministic():
    # Point-mass data: E[x0 | x_t] = x0 exactly, so the exact x0-denoiser has zero loss.
    process = LinearVP()
    x0 = torch.full((64, 3), 0.7, dtype=torch.float64)
    obj = DenoisingScoreMatching(process, "x0", "snr")
    loss = obj.loss(
        lambda x, t: torch.full_like(x, 0.7), x0, generator=torch.Generator().manual_seed(0)
    )
    assert float(loss) == 0.0
    assert (
        float(
            obj.loss(
                lambda x, t: torch.zeros_like(x), x0, generator=torch.Generator().manual_seed(0)
            )
        )
        > 0
    )


def test_min_snr_weight_in_x0_space():
    process = LinearVP()
    obj = DenoisingScoreMatching(process, "eps", "min-snr", gamma=5.0)
    t = torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64)
    snr = (process.alpha(t) / process.sigma(t)) ** 2
    torch.testing.assert_close(obj._weight(process, t, "eps"), snr.clamp(max=5.0) / snr)


def test_flow_matching_zero_for_point_masses():
    # Both ends deterministic: the straight-line velocity x1 - x0 is exact.
    process = LinearInterpolant()
    x0 = torch.zeros(16, 2, dtype=torch.float64)
    x1 = torch.ones(16, 2, dtype=torch.float64)
    obj = FlowMatching(process)
    assert (
        float(
            obj.loss(
                lambda x, t: torch.ones_like(x),
                x0,
                noise=x1,
                generator=torch.Generator().manual_seed(0),
            )
        )
        == 0.0
    )
    assert float(
        obj.loss(
            lambda x, t: torch.zeros_like(x),
            x0,
            noise=x1,
            generator=torch.Generator().manual_seed(0),
        )
    ) == pytest.approx(1.0)


def test_flow_matching_exact_velocity_beats_perturbed():
    process = RectifiedFlow()
    net = exact_net(process, "velocity")
    x0 = DATA.sample(4096, generator=torch.Generator().manual_seed(0))
    obj = FlowMatching(process, LogitNormalTime())
    base = obj.loss(net, x0, generator=torch.Generator().manual_seed(3))
    worse = obj.loss(lambda x, t: 1.05 * net(x, t), x0, generator=torch.Generator().manual_seed(3))
    assert float(worse) > float(base)


@pytest.mark.parametrize(
    "sampler", [UniformTime(), LogitNormalTime(), UShapedTime()], ids=lambda s: type(s).__name__
)
def test_time_samplers_stay_in_range_and_have_expected_shape(sampler):
    t = sampler.sample(
        20000, RectifiedFlow(), generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    assert float(t.min()) > 0 and float(t.max()) <= 1
    assert float(t.mean()) == pytest.approx(0.5, abs=0.02)  # all three are symmetric about 1/2
    if isinstance(sampler, UShapedTime):  # more mass at the ends than in the middle
        assert float(((t < 0.1) | (t > 0.9)).float().mean()) > 0.4


def test_masked_entries_do_not_count():
    process = LinearVP()
    x0 = torch.zeros(8, 4, dtype=torch.float64)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    obj = DenoisingScoreMatching(process, "x0")

    def net(x, t):
        out = torch.zeros_like(x)
        out[:, 2:] = 100.0  # garbage on padded entries only
        return out

    assert float(obj.loss(net, x0, mask=mask, generator=torch.Generator().manual_seed(0))) == 0.0


def test_reflow_pairs_map_noise_to_data():
    process = RectifiedFlow()
    model = DATA.denoiser(process, "velocity")
    noise = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0, x1 = reflow_pairs(model, noise, steps=50)
    assert x1 is noise
    assert float((x0.mean(0) - DATA.means[0]).abs().max()) < 0.2

import pytest
import torch

from diffcore.predictions import KINDS, Denoiser, convert, from_x0_eps, to_x0_eps

from .conftest import interior_times


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_every_kind(gaussian_process, kind):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(7, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(7, 3, generator=g, dtype=torch.float64)
    t = interior_times(gaussian_process)
    x = gaussian_process.marginal(x0, t, eps)
    y = from_x0_eps(x0, eps, t, gaussian_process, kind)
    x0_back, eps_back = to_x0_eps(y, x, t, gaussian_process, kind)
    torch.testing.assert_close(x0_back, x0, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(eps_back, eps, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("source", KINDS)
@pytest.mark.parametrize("target", KINDS)
def test_convert_between_all_pairs(gaussian_process, source, target):
    g = torch.Generator().manual_seed(1)
    x0, eps = (torch.randn(7, 2, generator=g, dtype=torch.float64) for _ in range(2))
    t = interior_times(gaussian_process)
    x = gaussian_process.marginal(x0, t, eps)
    y = from_x0_eps(x0, eps, t, gaussian_process, source)
    got = convert(y, x, t, gaussian_process, source=source, target=target)
    torch.testing.assert_close(
        got, from_x0_eps(x0, eps, t, gaussian_process, target), atol=1e-7, rtol=1e-7
    )


def test_unknown_kind_is_named():
    from diffcore.processes import LinearVP

    with pytest.raises(ValueError, match="unknown prediction kind 'noise'"):
        Denoiser(lambda x, t: x, "noise", LinearVP())


def test_prediction_reads_any_kind_for_one_nfe():
    from diffcore.processes import LinearVP

    model = Denoiser(lambda x, t: torch.zeros_like(x), "eps", LinearVP())
    pred = model(torch.ones(2, 3), 0.5)
    _ = pred.x0, pred.v, pred.score, pred.velocity
    assert model.nfe == 1
    assert pred.x0.dtype == torch.float32

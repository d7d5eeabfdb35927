"""TSDiff observation self-guidance: imputing missing entries of a correlated Gaussian series.

The exact conditional mean of the missing entries is ``mu_m + C_mo C_oo^{-1} (y - mu_o)``.
Self-guidance is an approximation (it uses the model's own x0_hat); it must bring the imputed
mean close to the exact one, far closer than the unconditional mean is.
"""

import pytest
import torch

from diffcore.guidance import ObservationGuidance
from diffcore.processes import LinearVP
from diffcore.samplers import DDPMAncestral, sample, uniform_t
from diffcore.testing import FullGaussianMixture

F64 = torch.float64
PROCESS = LinearVP()
D = 8
_I = torch.arange(D, dtype=F64)
COV = 0.9 ** (_I[:, None] - _I[None]).abs()  # AR(1)-like series
MEAN = torch.sin(_I / 2)
PRIOR = FullGaussianMixture(torch.ones(1, dtype=F64), MEAN[None], COV[None])
MASK = torch.tensor([1, 1, 0, 1, 0, 0, 1, 0], dtype=F64)  # 1: observed
Y = PRIOR.sample(1, generator=torch.Generator().manual_seed(0))
OBS, MISS = MASK.bool(), ~MASK.bool()
EXACT = MEAN[MISS] + COV[MISS][:, OBS] @ torch.linalg.solve(COV[OBS][:, OBS], Y[0, OBS] - MEAN[OBS])
GRID = uniform_t(PROCESS, 50, t_end=0.0)


def impute(scale, loss="mse", quantile=0.5, n=500):
    guided = ObservationGuidance(
        PRIOR.denoiser(PROCESS, "eps"), Y, MASK, scale=scale, loss=loss, quantile=quantile
    )
    x = torch.randn(n, D, generator=torch.Generator().manual_seed(1), dtype=F64)
    return sample(
        guided, x, GRID, DDPMAncestral(), generator=torch.Generator().manual_seed(2), progress=False
    ).x


@pytest.mark.parametrize("loss", ["mse", "quantile"])
def test_imputation_approaches_the_exact_conditional_mean(loss):
    prior_err = float((MEAN[MISS] - EXACT).norm())
    xs = impute(2.0, loss)
    err = float((xs[:, MISS].mean(0) - EXACT).norm())
    obs_err = float((xs[:, OBS].median(0).values - Y[0, OBS]).norm())
    print(
        f"\nTSDiff {loss}: missing-mean error {err:.3f} (unconditional {prior_err:.3f}), "
        f"observed median error {obs_err:.3f}"
    )
    assert err < 0.15 * prior_err
    assert obs_err < 0.3


def test_scale_zero_is_unconditional_and_quantiles_order_the_samples():
    xs = impute(0.0, n=400)
    assert float((xs[:, MISS].mean(0) - MEAN[MISS]).norm()) < 0.2  # 4 entries, se ~ 0.05 each
    q = torch.cat([torch.full((200,), 0.1), torch.full((200,), 0.9)]).to(F64)
    xs = impute(2.0, "quantile", quantile=q, n=400)
    # q = 0.9 penalises under-prediction: those samples sit above y, and so do their neighbours
    low, high = xs[:200].mean(0), xs[200:].mean(0)
    assert bool((high[OBS] > low[OBS]).all()) and bool((high[MISS] > low[MISS]).all())


def test_nan_outside_the_mask_is_ignored_and_bad_settings_are_named():
    y = torch.where(MASK.bool(), Y, torch.full_like(Y, float("nan")))
    guided = ObservationGuidance(PRIOR.denoiser(PROCESS, "eps"), y, MASK, scale=1.0)
    assert bool(torch.isfinite(guided(torch.zeros(3, D, dtype=F64), 0.5).score).all())
    with pytest.raises(ValueError, match="NaN or inf at observed"):
        ObservationGuidance(None, torch.full_like(Y, float("nan")), MASK)
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        ObservationGuidance(None, Y, MASK, loss="l1")
    with pytest.raises(ValueError, match="quantile"):
        ObservationGuidance(None, Y, MASK, loss="quantile", quantile=1.0)

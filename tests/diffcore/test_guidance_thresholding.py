"""Dynamic thresholding (Imagen): x0 inside [-1, 1], unchanged when already small."""

import pytest
import torch

from diffcore.guidance import ClassifierFreeGuidance, DynamicThresholding
from diffcore.processes import LinearVP
from diffcore.samplers import DDIM, append_zero, karras, sample
from diffcore.testing import GaussianData

F64 = torch.float64
PROCESS = LinearVP()


def gaussian(mean, std):
    return GaussianData.create(torch.tensor(mean, dtype=F64), torch.tensor(std, dtype=F64))


def test_large_predictions_are_brought_into_range_and_eps_follows():
    model = gaussian([3.0, -2.0, 0.5, 4.0], [2.0, 2.0, 1.0, 3.0]).denoiser(PROCESS, "eps")
    x = 2 * torch.randn(64, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    pred = DynamicThresholding(model, percentile=0.9)(x, 0.3)
    raw = model(x, 0.3).x0
    assert float(raw.abs().max()) > 2  # the test has teeth
    assert float(pred.x0.abs().max()) <= 1 + 1e-12
    # the p-quantile of |x0| maps to the bound, per sample
    s = torch.quantile(raw.abs(), 0.9, dim=1).clamp_min(1)
    torch.testing.assert_close(pred.x0, raw.clamp(-s[:, None], s[:, None]) / s[:, None])
    # eps is re-expressed from the thresholded x0: x = alpha x0 + sigma eps still holds
    t = torch.tensor(0.3, dtype=F64)
    torch.testing.assert_close(x, PROCESS.alpha(t) * pred.x0 + PROCESS.sigma(t) * pred.eps)


def test_no_op_when_predictions_are_small():
    model = gaussian([0.1, -0.2, 0.0], [0.1, 0.1, 0.2]).denoiser(PROCESS, "eps")
    x = 0.3 * torch.randn(32, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    wrapped = DynamicThresholding(model)
    for t in (0.1, 0.5, 0.9):
        raw = model(x, t).x0
        assert float(raw.abs().max()) < 1
        torch.testing.assert_close(wrapped(x, t).x0, raw, rtol=0, atol=0)
        torch.testing.assert_close(wrapped(x, t).eps, model(x, t).eps)


def test_sampling_at_high_guidance_stays_in_range():
    cond = gaussian([0.8, -0.6], [0.3, 0.3]).denoiser(PROCESS, "eps")
    uncond = gaussian([0.0, 0.0], [0.3, 0.3]).denoiser(PROCESS, "eps")
    cfg = ClassifierFreeGuidance(cond, uncond, 6.0)  # tilted mean 6 * (0.8, -0.6): out of range
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    grid = append_zero(karras(PROCESS, 20, t_end=1e-3))
    plain = sample(cfg, x, grid, DDIM(), progress=False).x
    thresholded = sample(DynamicThresholding(cfg), x, grid, DDIM(), progress=False).x
    assert float(plain.abs().max()) > 2
    assert float(thresholded.abs().max()) <= 1 + 1e-9


def test_tree_states_are_thresholded_leaf_by_leaf():
    dt = DynamicThresholding(model=None, percentile=1.0)
    a, b = torch.tensor([[4.0, -2.0]]), torch.tensor([[0.5, -0.25, 0.1]])
    out = dt.threshold({"a": a, "b": (b,)})
    torch.testing.assert_close(out["a"], a / 4)
    torch.testing.assert_close(out["b"][0], b)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="percentile"):
        DynamicThresholding(None, percentile=0.0)
    with pytest.raises(ValueError, match="max_threshold"):
        DynamicThresholding(None, max_threshold=0.5)

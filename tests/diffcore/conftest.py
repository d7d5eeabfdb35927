import pytest
import torch

from diffcore.processes import EDM, VE, CosineVP, DiscreteVP, LinearVP, RectifiedFlow, SubVP

GAUSSIAN_PROCESSES = [
    LinearVP(),
    CosineVP(),
    DiscreteVP.linear(),
    SubVP(),
    VE(),
    EDM(),
    RectifiedFlow(),
]


@pytest.fixture(params=GAUSSIAN_PROCESSES, ids=lambda p: type(p).__name__)
def gaussian_process(request):
    return request.param


def interior_times(process, n=7):
    """Times strictly inside the process range (avoid singular ends)."""
    lo, hi = process.t_min, process.t_max
    return lo + (hi - lo) * torch.linspace(0.05, 0.95, n, dtype=torch.float64)

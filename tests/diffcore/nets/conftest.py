import pytest
import torch


def _perturb(module: torch.nn.Module, seed: int = 0, std: float = 0.1) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
    return module


@pytest.fixture
def perturb():
    """Add noise to every parameter: zero-initialised branches would hide conditioning."""
    return _perturb

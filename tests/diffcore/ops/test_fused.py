"""The fused solver update: torch twin, Triton kernel under the interpreter, GPU parity."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

from diffcore.ops import lincomb
from diffcore.ops.fused import lincomb_reference


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_reference_matches_naive_sum(dtype):
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(4, 3, 5, generator=g).to(dtype) for _ in range(3)]
    cs = [torch.tensor([1.0, -2.0, 0.5, 3.0]), 0.25, torch.tensor(-1.5)]
    expected = sum(
        torch.as_tensor(c, dtype=torch.float64).reshape(-1, 1, 1) * x.double()
        for c, x in zip(cs, xs, strict=True)
    )
    out = lincomb(cs, xs)
    assert out.dtype == dtype and out.shape == xs[0].shape
    tol = {torch.float32: 1e-6, torch.float64: 1e-12, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(out.double(), expected, atol=tol * 10, rtol=tol)


def test_bad_inputs_are_named():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="as many coefficients"):
        lincomb([1.0], [x, x])
    with pytest.raises(ValueError, match="share shape"):
        lincomb([1.0, 1.0], [x, torch.zeros(2, 4)])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        lincomb([torch.ones(3)], [x])


_SCRIPT = """
import json, torch
from diffcore.ops import lincomb
from diffcore.ops.fused import lincomb_reference
g = torch.Generator().manual_seed(0)
errs = {}
for dtype in (torch.float32, torch.float64):
    for n in (1, 2, 3, 4):
        xs = [torch.randn(3, 7, 5, generator=g, dtype=dtype) for _ in range(n)]
        cs = [torch.randn(3, generator=g, dtype=torch.float64) for _ in range(n)]
        a = lincomb(cs, xs, backend="triton")
        b = lincomb_reference(cs, xs)
        errs[f"{dtype}-{n}"] = float((a - b).abs().max())
print(json.dumps(errs))
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
def test_triton_kernel_under_interpreter_matches_twin():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    errs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert max(errs.values()) < 1e-5, errs


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_gpu_parity(dtype):
    g = torch.Generator(device="cuda").manual_seed(0)
    xs = [torch.randn(16, 3, 64, 64, generator=g, device="cuda").to(dtype) for _ in range(3)]
    cs = [torch.randn(16, generator=g, device="cuda", dtype=torch.float64) for _ in range(3)]
    a = lincomb(cs, xs, backend="triton")
    b = lincomb_reference(cs, xs)
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-5
    torch.testing.assert_close(a.float(), b.float(), atol=tol, rtol=tol)

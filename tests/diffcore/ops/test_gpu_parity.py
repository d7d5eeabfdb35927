"""Triton kernels vs the torch twin on a CUDA device (``pytest -m gpu``).

The kernels run with FMA contraction off and sum coordinates in the twin's order, so the
results are compared exactly: same edges, same indices, same distances, on CUDA and on CPU.
"""

import importlib.util

import pytest
import torch

from diffcore.ops import _dispatch, chamfer_distance, knn_graph, knn_points, radius_graph

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton"),
]

DTYPES = [torch.float32, torch.float64]
CUDA = torch.device("cuda")


def cloud(n, dim, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, dim, generator=g, dtype=dtype)
    x[1::97] = x[::97][: x[1::97].shape[0]]  # some exact duplicates
    return x


def batch_of(sizes):
    return torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])


def all_three(fn, x, *args, **kwargs):
    """fn on CUDA with triton, on CUDA with torch, on CPU with torch; results on CPU."""
    cpu_args = [a.cpu() if isinstance(a, torch.Tensor) else a for a in args]
    gpu_args = [a.to(CUDA) if isinstance(a, torch.Tensor) else a for a in args]
    xg = x.to(CUDA)
    return (
        fn(xg, *gpu_args, backend="triton", **kwargs),
        fn(xg, *gpu_args, backend="torch", **kwargs),
        fn(x.cpu(), *cpu_args, backend="torch", **kwargs),
    )


def test_auto_chooses_triton_on_cuda_and_torch_on_cpu():
    assert _dispatch.choose_backend("auto", CUDA) == "triton"
    assert _dispatch.choose_backend("auto", torch.device("cpu")) == "torch"
    assert _dispatch.choose_backend("auto", CUDA, k=1000) == "torch"  # past the kernel's k


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("k", "loop"), [(1, False), (16, False), (16, True), (100, False)])
def test_knn_graph_parity(dtype, k, loop):
    x = cloud(6000, 3, dtype, seed=k)
    batch = batch_of([3000, 1, 2500, 499])
    tri, twin, cpu = all_three(knn_graph, x, k, batch, loop=loop)
    assert tri.device.type == "cuda" and tri.dtype == torch.long
    assert torch.equal(tri, twin)
    assert torch.equal(tri.cpu(), cpu)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("cap", "loop"), [(None, False), (32, False), (4, True)])
def test_radius_graph_parity(dtype, cap, loop):
    x = cloud(6000, 3, dtype, seed=7)
    batch = batch_of([3000, 1, 2500, 499])
    tri, twin, cpu = all_three(radius_graph, x, 0.06, batch, loop=loop, max_num_neighbors=cap)
    assert torch.equal(tri, twin)
    assert torch.equal(tri.cpu(), cpu)


def test_many_small_graphs_and_high_dimension():
    x = cloud(20000, 3, torch.float32, seed=1)
    batch = torch.arange(20000) // 10
    for fn, arg in ((knn_graph, 4), (radius_graph, 0.3)):
        tri, twin, _ = all_three(fn, x, arg, batch)
        assert torch.equal(tri, twin)
    feats = cloud(3000, 64, torch.float32, seed=2)
    tri, twin, cpu = all_three(knn_graph, feats, 8)
    assert torch.equal(tri, twin) and torch.equal(tri.cpu(), cpu)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm", [1, 2])
def test_knn_points_parity(dtype, norm):
    g = torch.Generator().manual_seed(norm)
    p1 = torch.randn(4, 700, 3, generator=g, dtype=dtype)
    p2 = torch.randn(4, 900, 3, generator=g, dtype=dtype)
    l1, l2 = torch.tensor([700, 10, 0, 350]), torch.tensor([900, 3, 50, 900])
    tri, twin, cpu = all_three(knn_points, p1, p2, l1, l2, K=8, norm=norm)
    for field in ("idx", "dists"):
        assert torch.equal(getattr(tri, field), getattr(twin, field)), field
        assert torch.equal(getattr(tri, field).cpu(), getattr(cpu, field)), field


def test_chamfer_parity_and_gradients():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 2000, 3, generator=g).to(CUDA).requires_grad_(True)
    y = torch.randn(3, 1500, 3, generator=g).to(CUDA).requires_grad_(True)
    grads = []
    for backend in ("triton", "torch"):
        loss, _ = chamfer_distance(x, y, backend=backend)
        gx, gy = torch.autograd.grad(loss, (x, y))
        grads.append((loss.detach(), gx, gy))
    for a, b in zip(*grads, strict=True):
        assert torch.equal(a, b)


def test_triton_backend_limits():
    x = cloud(100, 3, torch.float32, seed=4).to(CUDA)
    with pytest.raises(ValueError, match="k <= "):
        knn_graph(x, 1000, backend="triton")
    assert knn_graph(x, 1000).shape == (2, 100 * 99)  # auto falls back to the twin

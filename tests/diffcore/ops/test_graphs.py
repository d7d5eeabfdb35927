"""knn_graph / radius_graph against a plain brute force, on CPU (torch backend)."""

import itertools
import math

import pytest
import torch

import diffcore.ops as ops
from diffcore.ops import _dispatch, _grid, _reference, knn_graph, radius_graph

DTYPES = [torch.float32, torch.float64]


def sqdist(x):
    """(N, N) squared distances, coordinate by coordinate (the ops' documented arithmetic)."""
    acc = torch.zeros(x.shape[0], x.shape[0], dtype=x.dtype)
    for c in range(x.shape[1]):
        diff = x[:, None, c] - x[None, :, c]
        acc = acc + diff * diff
    return acc


def graph_ids(batch, n):
    return [0] * n if batch is None else batch.tolist()


def brute_knn(x, k, batch=None, loop=False):
    d, g = sqdist(x), graph_ids(batch, x.shape[0])
    edges = []
    for i in range(x.shape[0]):
        cand = sorted(
            (d[i, j].item(), j) for j in range(x.shape[0]) if g[j] == g[i] and (loop or j != i)
        )
        edges += [(j, i) for _, j in cand[:k]]
    return torch.tensor(edges, dtype=torch.long).reshape(-1, 2).T


def brute_radius(x, r, batch=None, loop=False, cap=None):
    d, g = sqdist(x), graph_ids(batch, x.shape[0])
    r2 = torch.tensor(r * r, dtype=x.dtype)
    edges = []
    for i in range(x.shape[0]):
        js = [j for j in range(x.shape[0]) if g[j] == g[i] and (loop or j != i) and d[i, j] < r2]
        edges += [(j, i) for j in js[:cap]]
    return torch.tensor(edges, dtype=torch.long).reshape(-1, 2).T


def unequal_batch(sizes):
    """Sorted graph ids for graphs of these sizes; graph ids skip one value (an empty graph)."""
    ids = [g + (g >= 2) for g, s in enumerate(sizes) for _ in range(s)]
    return torch.tensor(ids, dtype=torch.long)


@pytest.fixture
def force_grid(monkeypatch):
    """Send every torch-backend search through the cell grid (normally only for large sets),
    and keep it there even where the dense brute force would be cheaper."""
    monkeypatch.setattr(_dispatch, "GRID_MIN_POINTS", 1)
    monkeypatch.setattr(_grid, "_DENSE_FRACTION", math.inf)


@pytest.fixture
def force_brute(monkeypatch):
    monkeypatch.setattr(_dispatch, "GRID_MIN_POINTS", 2**62)


PATHS = ["brute", "grid"]


@pytest.fixture(params=PATHS)
def path(request):
    request.getfixturevalue(f"force_{request.param}")
    return request.param


# ---------------------------------------------------------------- correctness vs brute force


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("dim", [1, 3, 5])
def test_knn_graph_matches_brute_force(path, dtype, loop, dim):
    g = torch.Generator().manual_seed(dim)
    x = torch.randn(90, dim, generator=g, dtype=dtype)
    batch = unequal_batch([40, 1, 30, 19])
    for k in (1, 5, 50):
        assert torch.equal(knn_graph(x, k, batch, loop=loop), brute_knn(x, k, batch, loop))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_radius_graph_matches_brute_force(path, dtype, loop, dim):
    g = torch.Generator().manual_seed(10 + dim)
    x = torch.rand(90, dim, generator=g, dtype=dtype)
    batch = unequal_batch([40, 1, 30, 19])
    r = 0.25 * math.sqrt(dim)
    for cap in (None, 1, 4, 32):
        got = radius_graph(x, r, batch, loop=loop, max_num_neighbors=cap)
        assert torch.equal(got, brute_radius(x, r, batch, loop, cap)), cap


def test_ties_go_to_lower_index(path):
    # Integer lattice with repeated points: many exactly equal distances, including r itself.
    x = torch.tensor(list(itertools.product(range(4), range(3))) * 2, dtype=torch.float32)
    for k in (1, 3, 7, 30):
        assert torch.equal(knn_graph(x, k), brute_knn(x, k))
        assert torch.equal(knn_graph(x, k, loop=True), brute_knn(x, k, loop=True))
    for r in (1.0, 1.5, 2.0):  # distances equal to r are left out (strict <)
        assert torch.equal(radius_graph(x, r), brute_radius(x, r))
        assert torch.equal(radius_graph(x, r, max_num_neighbors=3), brute_radius(x, r, cap=3))


@pytest.mark.parametrize("offset", [1e3, -3e4])
def test_exact_ties_far_from_origin_in_float32(path, offset):
    # Integer coordinates stay exact in float32; the matrix-product screen must keep every tie.
    x = torch.tensor(list(itertools.product(range(5), range(4), range(3))), dtype=torch.float32)
    x = torch.cat([x, x[::3]]) + offset
    for k in (4, 11):
        assert torch.equal(knn_graph(x, k), brute_knn(x, k))
    for r in (1.0, math.sqrt(2.0), 2.0):
        assert torch.equal(radius_graph(x, r, max_num_neighbors=None), brute_radius(x, r))


def test_screen_stays_exact_when_matmuls_are_coarse(force_brute, monkeypatch):
    # With TF32 / bfloat16 products allowed, the screen's tolerance widens; results must not move.
    monkeypatch.setattr(_reference, "_ieee_products", lambda t: False)
    g = torch.Generator().manual_seed(8)
    x = torch.rand(120, 3, generator=g)
    assert torch.equal(knn_graph(x, 9), brute_knn(x, 9))
    assert torch.equal(radius_graph(x, 0.3), brute_radius(x, 0.3, cap=32))


def test_all_points_equal(path):
    x = torch.ones(12, 3, dtype=torch.float64)
    assert torch.equal(knn_graph(x, 4), brute_knn(x, 4))
    assert knn_graph(x, 4).shape == (2, 48)  # exactly k each, self left out
    assert torch.equal(radius_graph(x, 0.5, max_num_neighbors=5), brute_radius(x, 0.5, cap=5))


def test_far_from_origin_and_flat(path):
    # Large offsets (cell indices far from 0) and a degenerate axis (all z equal).
    g = torch.Generator().manual_seed(3)
    x = torch.rand(80, 3, generator=g, dtype=torch.float64) * 10 + 1e6
    x[:, 2] = 5.0
    assert torch.equal(knn_graph(x, 6), brute_knn(x, 6))
    assert torch.equal(radius_graph(x, 1.7), brute_radius(x, 1.7))


def test_two_clusters_need_large_cells(path):
    # Dense clusters far apart: the k-nearest grid must grow its cells for k > cluster size.
    g = torch.Generator().manual_seed(4)
    x = torch.cat([torch.randn(30, 2, generator=g) * 1e-3, torch.randn(30, 2, generator=g) + 100])
    for k in (5, 40):
        assert torch.equal(knn_graph(x, k), brute_knn(x, k))


# ------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_input(dtype):
    x = torch.empty(0, 3, dtype=dtype)
    for e in (knn_graph(x, 3), radius_graph(x, 1.0), knn_graph(x, 2, torch.empty(0).long())):
        assert e.shape == (2, 0) and e.dtype == torch.long
    with pytest.raises(ValueError, match="`backend`"):
        knn_graph(x, 3, backend="gpu")


def test_one_point():
    x = torch.zeros(1, 2)
    assert knn_graph(x, 3).shape == (2, 0)
    assert knn_graph(x, 3, loop=True).tolist() == [[0], [0]]
    assert radius_graph(x, 1.0).shape == (2, 0)
    assert radius_graph(x, 1.0, loop=True).tolist() == [[0], [0]]


def test_edges_never_cross_graphs_and_follow_flow():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(60, 3, generator=g)
    batch = unequal_batch([25, 10, 25])
    for edge in (knn_graph(x, 30, batch), radius_graph(x, 10.0, batch, max_num_neighbors=None)):
        assert torch.equal(batch[edge[0]], batch[edge[1]])
        assert not bool((edge[0] == edge[1]).any())
    s2t = knn_graph(x, 4, batch)
    t2s = knn_graph(x, 4, batch, flow="target_to_source")
    assert torch.equal(s2t.flip(0), t2s)
    assert torch.equal(s2t[1], torch.arange(60).repeat_interleave(4))  # targets sorted


def test_knn_graph_first_neighbour_is_nearest():
    x = torch.tensor([[0.0], [10.0], [1.0], [3.0]])
    assert knn_graph(x, 2).tolist() == [[2, 3, 3, 2, 0, 3, 2, 0], [0, 0, 1, 1, 2, 2, 3, 3]]


def test_max_num_neighbors_caps_and_keeps_lowest_indices():
    x = torch.zeros(10, 2)
    e = radius_graph(x, 1.0, max_num_neighbors=3)
    assert e.shape == (2, 30)
    assert e[0, :3].tolist() == [1, 2, 3]  # node 0 keeps 1, 2, 3 (self does not count)
    assert radius_graph(x, 1.0, max_num_neighbors=3, loop=True)[0, :3].tolist() == [0, 1, 2]
    assert radius_graph(x, 1.0, max_num_neighbors=None).shape == (2, 90)


def test_small_memory_budget_gives_same_edges():
    g = torch.Generator().manual_seed(6)
    x = torch.rand(300, 3, generator=g)
    batch = unequal_batch([100, 3, 197])
    for fn, kw in ((knn_graph, {"k": 7}), (radius_graph, {"r": 0.2})):
        full = fn(x, batch=batch, backend="torch", **kw)
        tiny = fn(x, batch=batch, backend="torch", memory_budget=1024, **kw)
        assert torch.equal(full, tiny)


def test_grid_agrees_with_brute_force_on_larger_sets(monkeypatch):
    g = torch.Generator().manual_seed(7)
    surface = torch.randn(1500, 3, generator=g, dtype=torch.float64)
    surface = surface / surface.norm(dim=1, keepdim=True)  # points on a sphere: non-uniform
    blob = torch.randn(700, 3, generator=g, dtype=torch.float64) * 0.1
    x = torch.cat([surface, blob]).float()
    batch = torch.cat([torch.zeros(1500), torch.ones(700)]).long()
    results = {}
    for path, threshold in (("grid", 1), ("brute", 2**62)):
        monkeypatch.setattr(_dispatch, "GRID_MIN_POINTS", threshold)
        results[path] = (
            knn_graph(x, 12, batch),
            radius_graph(x, 0.1, batch, max_num_neighbors=16),
        )
    for a, b in zip(results["grid"], results["brute"], strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_device_and_dtype_preserved(dtype):
    x = torch.randn(20, 3, dtype=dtype)
    for e in (knn_graph(x, 3), radius_graph(x, 1.0)):
        assert e.dtype == torch.long and e.device == x.device
    assert x.dtype == dtype


def test_int32_batch_and_gradients_untouched():
    x = torch.randn(20, 2, requires_grad=True)
    batch = torch.tensor([0] * 10 + [1] * 10, dtype=torch.int32)
    e = knn_graph(x, 2, batch)
    assert e.shape == (2, 40) and not e.requires_grad


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": torch.zeros(5)}, "`x` must have shape"),
        ({"x": torch.zeros(5, 0)}, "at least one coordinate"),
        ({"x": torch.zeros(5, 2, dtype=torch.int64)}, "float32 or float64"),
        ({"x": torch.tensor([[0.0, 1.0], [float("nan"), 0.0]])}, "NaN or infinite.*point 1"),
        ({"x": torch.tensor([[0.0, float("inf")]])}, "NaN or infinite"),
        ({"x": torch.tensor([[3e38, 0.0]])}, "overflow"),
        ({"batch": torch.tensor([0, 1, 1, 0, 2])}, "sorted"),
        ({"batch": torch.tensor([0, 0, 1])}, r"shape \(5,\)"),
        ({"batch": torch.zeros(5)}, "integer"),
        ({"batch": torch.tensor([-1, 0, 0, 0, 0])}, ">= 0"),
        ({"loop": 1}, "`loop`"),
        ({"flow": "both"}, "`flow`"),
        ({"backend": "cuda"}, "`backend`"),
        ({"memory_budget": 0}, "`memory_budget`"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    args = {"x": torch.zeros(5, 2)} | kwargs
    with pytest.raises(ValueError, match=match):
        knn_graph(k=2, **args)
    with pytest.raises(ValueError, match=match):
        radius_graph(r=1.0, **args)


@pytest.mark.parametrize("k", [0, -1, 2.0, True, None])
def test_bad_k(k):
    with pytest.raises(ValueError, match="`k`"):
        knn_graph(torch.zeros(3, 2), k)


@pytest.mark.parametrize("r", [0.0, -1.0, float("nan"), float("inf"), "1", None])
def test_bad_r(r):
    with pytest.raises(ValueError, match="`r`"):
        radius_graph(torch.zeros(3, 2), r)


@pytest.mark.parametrize("cap", [0, -3, 1.5])
def test_bad_max_num_neighbors(cap):
    with pytest.raises(ValueError, match="`max_num_neighbors`"):
        radius_graph(torch.zeros(3, 2), 1.0, max_num_neighbors=cap)


def test_triton_backend_refuses_cpu_tensors_without_interpreter():
    if not ops.triton_available():
        with pytest.raises(RuntimeError, match="triton"):
            knn_graph(torch.zeros(3, 2), 1, backend="triton")
        return
    from diffcore.ops import triton as kernels

    if kernels.INTERPRETED:
        pytest.skip("TRITON_INTERPRET=1 is set: CPU tensors are allowed")
    with pytest.raises(ValueError, match="CUDA tensors"):
        knn_graph(torch.zeros(3, 2), 1, backend="triton")


def test_public_names_import():
    for name in ops.__all__:
        assert getattr(ops, name) is not None

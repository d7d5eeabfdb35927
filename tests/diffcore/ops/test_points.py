"""knn_points / knn_gather / chamfer_distance against brute force and pytorch3d's definitions."""

import math

import pytest
import torch

from diffcore.ops import _dispatch, _grid, chamfer_distance, knn_gather, knn_points

DTYPES = [torch.float32, torch.float64]


def dist_row(a, pts, norm):
    """Distances from point a (D,) to pts (M, D), coordinate by coordinate."""
    acc = torch.zeros(pts.shape[0], dtype=pts.dtype)
    for c in range(pts.shape[1]):
        diff = a[c] - pts[:, c]
        acc = acc + (diff * diff if norm == 2 else diff.abs())
    return acc


def brute_knn_points(p1, p2, l1, l2, K, norm=2):
    b, n1, _ = p1.shape
    dists = torch.zeros(b, n1, K, dtype=p1.dtype)
    idx = torch.zeros(b, n1, K, dtype=torch.long)
    for s in range(b):
        for i in range(int(l1[s])):
            d = dist_row(p1[s, i], p2[s, : int(l2[s])], norm)
            best = sorted((v, j) for j, v in enumerate(d.tolist()))[:K]
            for slot, (v, j) in enumerate(best):
                dists[s, i, slot], idx[s, i, slot] = v, j
    return dists, idx


def clouds(b, n1, n2, d, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n1, d, generator=g, dtype=dtype), torch.randn(
        b, n2, d, generator=g, dtype=dtype
    )


@pytest.fixture(params=["brute", "grid"])
def path(request, monkeypatch):
    if request.param == "grid":
        monkeypatch.setattr(_dispatch, "GRID_MIN_POINTS", 1)
        monkeypatch.setattr(_grid, "_DENSE_FRACTION", math.inf)
    else:
        monkeypatch.setattr(_dispatch, "GRID_MIN_POINTS", 2**62)
    return request.param


# ---------------------------------------------------------------------------- knn_points


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm", [1, 2])
@pytest.mark.parametrize("dim", [2, 3, 4])
def test_knn_points_matches_brute_force(path, dtype, norm, dim):
    p1, p2 = clouds(3, 17, 23, dim, dtype, seed=dim)
    l1, l2 = torch.tensor([17, 5, 0]), torch.tensor([23, 3, 9])
    for K in (1, 4, 30):
        out = knn_points(p1, p2, l1, l2, K=K, norm=norm)
        want_d, want_i = brute_knn_points(p1, p2, l1, l2, K, norm)
        assert torch.equal(out.idx, want_i), K
        assert torch.equal(out.dists, want_d), K
        assert out.knn is None


def test_knn_points_without_lengths_and_ties(path):
    # Lattice points: equal distances everywhere; ties go to the lower index.
    grid = torch.tensor([[i, j, 0.0] for i in range(4) for j in range(4)])
    p1 = grid[None].repeat(2, 1, 1)
    p2 = torch.cat([grid, grid])[None].repeat(2, 1, 1)
    out = knn_points(p1, p2, K=6)
    want_d, want_i = brute_knn_points(p1, p2, [16, 16], [32, 32], 6)
    assert torch.equal(out.idx, want_i) and torch.equal(out.dists, want_d)
    assert out.idx[0, 0, :2].tolist() == [0, 16]  # the duplicate of point 0 comes next


def test_padding_is_index_zero_distance_zero():
    p1, p2 = clouds(2, 4, 3, 3, torch.float32, seed=1)
    out = knn_points(p1, p2, torch.tensor([4, 2]), torch.tensor([2, 3]), K=3)
    assert (out.idx[0, :, 2] == 0).all() and (out.dists[0, :, 2] == 0).all()  # P2 < K
    assert (out.idx[1, 2:] == 0).all() and (out.dists[1, 2:] == 0).all()  # padded queries


@pytest.mark.parametrize(("n1", "n2"), [(0, 5), (5, 0), (0, 0)])
def test_empty_clouds(n1, n2):
    p1, p2 = clouds(2, n1, n2, 3, torch.float32, seed=2)
    out = knn_points(p1, p2, K=2, return_nn=True)
    assert out.dists.shape == out.idx.shape == (2, n1, 2)
    assert out.knn is not None and out.knn.shape == (2, n1, 2, 3)
    assert (out.dists == 0).all() and (out.idx == 0).all()


def test_return_nn_matches_knn_gather():
    p1, p2 = clouds(2, 6, 7, 3, torch.float64, seed=3)
    l2 = torch.tensor([7, 2])
    out = knn_points(p1, p2, lengths2=l2, K=3, return_nn=True)
    want = torch.stack([p2[b][out.idx[b]] for b in range(2)])
    want[1, :, 2] = 0.0  # slot k >= lengths2 is zero-filled
    assert torch.equal(out.knn, want)
    dists, idx, nn = out  # unpacks like pytorch3d's namedtuple
    assert nn is out.knn


@pytest.mark.parametrize("norm", [1, 2])
def test_gradients_are_those_of_the_distance_formula(norm):
    p1, p2 = clouds(2, 5, 6, 3, torch.float64, seed=4)
    p1.requires_grad_(True)
    p2.requires_grad_(True)
    out = knn_points(p1, p2, lengths2=torch.tensor([6, 4]), K=3, norm=norm)
    g1, g2 = torch.autograd.grad(out.dists.sum(), (p1, p2))
    diff = p1.detach()[:, :, None, :] - torch.stack([p2.detach()[b][out.idx[b]] for b in range(2)])
    per_pair = 2 * diff if norm == 2 else diff.sign()  # d dist / d p1 for each neighbour
    assert torch.allclose(g1, per_pair.sum(dim=2))
    want2 = torch.zeros_like(p2)
    for b in range(2):
        want2[b].index_add_(0, out.idx[b].reshape(-1), -per_pair[b].reshape(-1, 3))
    assert torch.allclose(g2, want2)


def test_dtype_device_and_no_grad_leak():
    for dtype in DTYPES:
        p1, p2 = clouds(1, 3, 4, 2, dtype, seed=5)
        out = knn_points(p1, p2, K=2)
        assert out.dists.dtype == dtype and out.idx.dtype == torch.long
        assert out.dists.device == p1.device and not out.dists.requires_grad


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((torch.zeros(2, 3), torch.zeros(1, 2, 3)), {}, "`p1` must have shape"),
        ((torch.zeros(2, 3, 3), torch.zeros(1, 2, 3)), {}, "share batch size"),
        ((torch.zeros(1, 3, 3), torch.zeros(1, 2, 2)), {}, "share batch size"),
        ((torch.zeros(1, 3, 3), torch.zeros(1, 2, 3).double()), {}, "share dtype"),
        ((torch.zeros(1, 3, 3), torch.full((1, 2, 3), float("nan"))), {}, "`p2` has NaN"),
        ((torch.zeros(1, 3, 3), torch.zeros(1, 2, 3)), {"K": 0}, "`K`"),
        ((torch.zeros(1, 3, 3), torch.zeros(1, 2, 3)), {"norm": 3}, "`norm`"),
        (
            (torch.zeros(1, 3, 3), torch.zeros(1, 2, 3), torch.tensor([4])),
            {},
            r"`lengths1`.*\[0, 3\]",
        ),
        (
            (torch.zeros(1, 3, 3), torch.zeros(1, 2, 3), None, torch.tensor([1, 1])),
            {},
            "`lengths2`",
        ),
        ((torch.zeros(1, 3, 3), torch.zeros(1, 2, 3), torch.tensor([1.0])), {}, "integers"),
    ],
)
def test_knn_points_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        knn_points(*args, **kwargs)


def test_knn_gather_bad_input():
    x = torch.zeros(2, 4, 3)
    with pytest.raises(ValueError, match="`idx` must lie in"):
        knn_gather(x, torch.full((2, 1, 1), 4))
    with pytest.raises(ValueError, match="`idx` must have shape"):
        knn_gather(x, torch.zeros(1, 1, 1, dtype=torch.long))


# ------------------------------------------------------------------------- chamfer


def ref_direction(x, y, xl, yl, xn, yn, norm, abs_cosine):
    """Per-point terms from x to y, written from pytorch3d/loss/chamfer.py's definition."""
    b, n, _ = x.shape
    term = torch.zeros(b, n, dtype=torch.float64)
    term_n = torch.zeros(b, n, dtype=torch.float64)
    for s in range(b):
        for i in range(int(xl[s])):
            if int(yl[s]) == 0:
                j, v = 0, 0.0
            else:
                d = dist_row(x[s, i].double(), y[s, : int(yl[s])].double(), norm)
                v, j = min((v, j) for j, v in enumerate(d.tolist()))
            term[s, i] = v
            if xn is not None and yn is not None:
                near = yn[s, j].double() if int(yl[s]) > 0 else torch.zeros(x.shape[2]).double()
                a = xn[s, i].double()
                cos = (a @ near) / max(a.norm() * near.norm(), 1e-6)
                term_n[s, i] = 1 - (abs(cos) if abs_cosine else cos)
    return term, term_n


def ref_chamfer(x, y, xl, yl, xn, yn, weights, br, pr, norm, single, abs_cosine):
    has_n = xn is not None and yn is not None
    parts = []
    for a, c, al, cl, an, cn in ((x, y, xl, yl, xn, yn), (y, x, yl, xl, yn, xn))[
        : 1 if single else 2
    ]:
        t, tn = ref_direction(a, c, al, cl, an, cn, norm, abs_cosine)
        if weights is not None:
            t, tn = t * weights[:, None], tn * weights[:, None]
        if pr == "max":
            t = t.amax(1)
        elif pr in ("sum", "mean"):
            t, tn = t.sum(1), tn.sum(1)
            if pr == "mean":
                t, tn = t / al.clamp(min=1), tn / al.clamp(min=1)
        parts.append((t, tn))
    if pr == "max":
        loss = parts[0][0] if single else torch.maximum(parts[0][0], parts[1][0])
        loss_n = None
    else:
        loss = sum(p[0] for p in parts)
        loss_n = sum(p[1] for p in parts) if has_n else None
    if br is not None:
        div = 1.0 if br == "sum" else (x.shape[0] if weights is None else weights.sum())
        if br == "mean" and weights is not None and weights.sum() == 0:
            div = 1.0
        loss = loss.sum() / div
        loss_n = None if loss_n is None else loss_n.sum() / div
    return loss, loss_n


def chamfer_case(seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 7, 3, generator=g, dtype=dtype)
    y = torch.randn(3, 9, 3, generator=g, dtype=dtype)
    xn = torch.randn(3, 7, 3, generator=g, dtype=dtype)
    yn = torch.randn(3, 9, 3, generator=g, dtype=dtype)
    return x, y, torch.tensor([7, 4, 1]), torch.tensor([9, 9, 2]), xn, yn


@pytest.mark.parametrize("pr", ["mean", "sum", "max"])
@pytest.mark.parametrize("br", ["mean", "sum", None])
@pytest.mark.parametrize("single", [False, True])
@pytest.mark.parametrize("norm", [1, 2])
def test_chamfer_reductions(pr, br, single, norm):
    x, y, xl, yl, xn, yn = chamfer_case(seed=norm)
    normals = (None, None) if pr == "max" else (xn, yn)
    loss, loss_n = chamfer_distance(
        x,
        y,
        xl,
        yl,
        *normals,
        batch_reduction=br,
        point_reduction=pr,
        norm=norm,
        single_directional=single,
    )
    want, want_n = ref_chamfer(x, y, xl, yl, *normals, None, br, pr, norm, single, True)
    assert torch.allclose(loss.double(), want, rtol=1e-5, atol=1e-6)
    if pr == "max":
        assert loss_n is None
    else:
        assert torch.allclose(loss_n.double(), want_n, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("abs_cosine", [True, False])
def test_chamfer_weights_and_signed_normals(abs_cosine):
    x, y, xl, yl, xn, yn = chamfer_case(seed=7)
    for w in (torch.tensor([0.5, 2.0, 0.0]), torch.zeros(3)):
        loss, loss_n = chamfer_distance(x, y, xl, yl, xn, yn, weights=w, abs_cosine=abs_cosine)
        want, want_n = ref_chamfer(x, y, xl, yl, xn, yn, w, "mean", "mean", 2, False, abs_cosine)
        assert torch.allclose(loss.double(), want, rtol=1e-5, atol=1e-6)
        assert torch.allclose(loss_n.double(), want_n, rtol=1e-5, atol=1e-6)


def test_chamfer_without_reduction_gives_per_point_terms():
    x, y, xl, yl, _, _ = chamfer_case(seed=8, dtype=torch.float64)
    (tx, ty), none = chamfer_distance(x, y, xl, yl, batch_reduction=None, point_reduction=None)
    assert tx.shape == (3, 7) and ty.shape == (3, 9) and none is None
    assert torch.allclose(tx, ref_direction(x, y, xl, yl, None, None, 2, True)[0])
    single, _ = chamfer_distance(
        x, y, xl, yl, batch_reduction=None, point_reduction=None, single_directional=True
    )
    assert torch.equal(single, tx)


def test_chamfer_is_zero_for_equal_clouds_and_symmetric():
    x, y, *_ = chamfer_case(seed=9, dtype=torch.float64)
    assert chamfer_distance(x, x)[0] == 0
    assert torch.allclose(chamfer_distance(x, y)[0], chamfer_distance(y, x)[0])


def test_chamfer_gradients_flow_and_skip_padding():
    x, y, xl, yl, _, _ = chamfer_case(seed=10, dtype=torch.float64)
    x.requires_grad_(True)
    y.requires_grad_(True)
    loss, _ = chamfer_distance(x, y, xl, yl)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert (x.grad[1, 4:] == 0).all() and (y.grad[2, 2:] == 0).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_reduction": "max"}, "`batch_reduction`"),
        ({"point_reduction": "median"}, "`point_reduction`"),
        ({"point_reduction": None}, "must be None when `point_reduction` is None"),
        ({"norm": 3}, "`norm`"),
        ({"point_reduction": "max", "x_normals": torch.zeros(2, 4, 3)}, "normals cannot"),
        ({"x_normals": torch.zeros(2, 4, 2)}, "`x_normals` must have the shape"),
        ({"weights": torch.ones(3)}, r"`weights` must have shape \(2,\)"),
        ({"weights": torch.tensor([1.0, -1.0])}, "non-negative"),
        ({"y_lengths": torch.tensor([1, 9])}, r"`y_lengths` must lie in \[0, 5\]"),
        ({"y": torch.zeros(2, 5, 2)}, "share batch size"),
    ],
)
def test_chamfer_bad_input(kwargs, match):
    args = {"x": torch.zeros(2, 4, 3), "y": torch.zeros(2, 5, 3)} | kwargs
    with pytest.raises(ValueError, match=match):
        chamfer_distance(**args)

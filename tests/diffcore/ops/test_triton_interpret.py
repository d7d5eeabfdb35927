"""The Triton kernels on CPU, without a GPU.

1. Under Triton's interpreter (TRITON_INTERPRET=1, which must be set before triton is imported,
   hence a subprocess), each kernel runs on tiny CPU tensors and must agree exactly with the
   torch twin.
2. Ahead-of-time compilation for sm_80 / sm_90 (no device needed) proves the kernels lower to
   PTX, and that the distance arithmetic has no fused multiply-add (which would break
   bit-for-bit parity with the twin).
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None,
    reason="triton is not installed (it ships with torch's Linux CUDA wheels; "
    "`pip install diffcore[triton]`)",
)

_TIMEOUT_S = 240

_PRELUDE = """
import json, sys, torch
import diffcore.ops as ops
from diffcore.ops import triton as kernels
failures = {"knn": [], "radius": []}

def check(kernel, name, a, b):
    if not (a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)):
        failures[kernel].append(f"{name}: triton {tuple(a.shape)} vs torch {tuple(b.shape)}")

def both(fn, *args, **kw):
    return fn(*args, backend="triton", **kw), fn(*args, backend="torch", **kw)

def point_sets(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 3, generator=g, dtype=dtype)
    x[7] = x[3]
    x[8] = x[3]  # duplicates: exact ties
    batch = torch.tensor([0] * 70 + [1] + [3] * 29)  # unequal graphs, a singleton, a gap
    lattice = torch.tensor([[i, j] for i in range(4) for j in range(4)] * 2, dtype=dtype)
    return x, batch, lattice
"""


_KNN_CHECKS = """
for dtype in (torch.float32, torch.float64):
    x, batch, lattice = point_sets(dtype)
    for k, loop in ((1, False), (6, True), (20, False)):
        check("knn", f"knn_graph {dtype} k={k} loop={loop}",
              *both(ops.knn_graph, x, k, batch, loop=loop))
    check("knn", f"knn_graph lattice {dtype}", *both(ops.knn_graph, lattice, 5))
    g = torch.Generator().manual_seed(1)
    p1 = torch.randn(3, 9, 3, generator=g, dtype=dtype)
    p2 = torch.randn(3, 40, 3, generator=g, dtype=dtype)
    l1, l2 = torch.tensor([9, 4, 0]), torch.tensor([40, 2, 9])
    for norm in (1, 2):
        a, b = both(ops.knn_points, p1, p2, l1, l2, K=4, norm=norm)
        check("knn", f"knn_points idx {dtype} norm={norm}", a.idx, b.idx)
        check("knn", f"knn_points dists {dtype} norm={norm}", a.dists, b.dists)
    a, b = both(ops.chamfer_distance, p1, p2, l1, l2)
    check("knn", f"chamfer {dtype}", a[0], b[0])
check("knn", "knn_graph empty", *both(ops.knn_graph, torch.empty(0, 3), 3))
check("knn", "knn_graph one point", *both(ops.knn_graph, torch.zeros(1, 2), 3, loop=True))
"""

_RADIUS_CHECKS = """
for dtype in (torch.float32, torch.float64):
    x, batch, lattice = point_sets(dtype)
    for cap, loop in ((None, False), (1, True), (6, False)):
        check("radius", f"radius_graph {dtype} cap={cap} loop={loop}",
              *both(ops.radius_graph, x, 1.2, batch, loop=loop, max_num_neighbors=cap))
    # distances exactly r are excluded by both
    check("radius", f"radius_graph lattice {dtype}",
          *both(ops.radius_graph, lattice, 1.0, max_num_neighbors=None))
check("radius", "radius_graph empty", *both(ops.radius_graph, torch.empty(0, 2), 1.0))
check("radius", "radius_graph far apart", *both(ops.radius_graph, torch.eye(3) * 10, 1.0))
"""


@pytest.fixture(scope="module")
def interpreted_report():
    """Run every kernel check in one interpreter subprocess (imports dominate its cost)."""
    env = dict(os.environ, TRITON_INTERPRET="1", TRITON_DEFAULT_FP_FUSION="0")
    code = "\n".join(
        [
            _PRELUDE,
            "assert kernels.INTERPRETED, 'kernels were not built for the interpreter'",
            _KNN_CHECKS,
            _RADIUS_CHECKS,
            "print(json.dumps(failures))",
        ]
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=_TIMEOUT_S
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_knn_kernel_matches_torch_twin_under_interpreter(interpreted_report):
    assert interpreted_report["knn"] == []


def test_radius_kernel_matches_torch_twin_under_interpreter(interpreted_report):
    assert interpreted_report["radius"] == []


_AOT = """
import importlib.util, json, os, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

# Load the kernel file alone: it needs only triton, and skipping torch's import saves seconds.
package = importlib.util.find_spec("diffcore").submodule_search_locations[0]
spec = importlib.util.spec_from_file_location(
    "_diffcore_kernels_aot", os.path.join(package, "ops", "triton", "_kernels.py"))
K = importlib.util.module_from_spec(spec)
spec.loader.exec_module(K)

common = {"q_ptr": "*{dt}", "x_ptr": "*{dt}", "lo_ptr": "*i32", "hi_ptr": "*i32",
          "ex_ptr": "*i32"}
scalars = {"M": "i32", "N": "i32", "D": "i32", "stride_q": "i32", "stride_x": "i32"}

def knn(dt, norm, k, exclude):
    sig = {**common, "out_d_ptr": "*{dt}", "out_i_ptr": "*i32", **scalars}
    const = {"K": k, "KP": triton.next_power_of_2(k), "HAS_EXCLUDE": exclude, "NORM": norm,
             "BLOCK_M": 32, "BLOCK_N": 64}
    return K.knn_kernel, sig, const

def radius(dt, fill):
    sig = {**common, "r2_ptr": "*{dt}", "count_ptr": "*i32", "offset_ptr": "*i64",
           "out_ptr": "*i32", **scalars, "cap": "i32"}
    const = {"HAS_EXCLUDE": True, "FILL": fill, "BLOCK_M": 32, "BLOCK_N": 128}
    return K.radius_kernel, sig, const

report = {"compiled": [], "fma": []}
cases = [("knn", "fp32", knn("fp32", 2, 16, True), 90),
         ("radius-fill", "fp64", radius("fp64", True), 80)]
for name, dt, (fn, sig, const), arch in cases:
    sig = {key: val.format(dt=dt) for key, val in sig.items()}
    sig.update({key: "constexpr" for key in const})
    try:
        compiled = triton.compile(ASTSource(fn, sig, const), target=GPUTarget("cuda", arch, 32),
                                  options={"enable_fp_fusion": False, "num_warps": 4})
    except Exception as err:  # noqa: BLE001
        if not report["compiled"] and "ptxas" in str(err).lower():
            print(json.dumps({"skip": f"no working ptxas: {err}"[:300]})); raise SystemExit
        raise
    report["compiled"].append(f"{name}-{dt}-sm{arch}")
    if "fma.rn" in compiled.asm["ptx"]:
        report["fma"].append(name)
print(json.dumps(report))
"""


def test_kernels_compile_for_gpus_without_fused_multiply_add():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, "-c", _AOT], env=env, capture_output=True, text=True, timeout=_TIMEOUT_S
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in report:
        pytest.skip(report["skip"])
    assert len(report["compiled"]) == 2
    assert report["fma"] == []

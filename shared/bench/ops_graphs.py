"""Benchmark diffcore.ops.radius_graph / knn_graph against a naive torch.cdist version.

Run alone: ``uv run python shared/bench/ops_graphs.py [--sizes 1000 10000 100000]``.

CPU: every (op, size, implementation) runs in its own subprocess so its peak resident memory
(``resource.getrusage`` ru_maxrss, minus the peak before the call) belongs to that call alone.
The naive version builds the full N x N distance matrix; it is skipped, with the reason, when
its analytic memory estimate exceeds half the machine's RAM (or --naive-limit-gib).
CUDA (when present): Triton kernel vs the torch twin on the same device, and their peak
allocator memory. Prints ratios and writes bench-results/ops_graphs.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench-results" / "ops_graphs.json"
K = 16  # neighbours for knn_graph
MEAN_NEIGHBOURS = 32  # radius chosen so a point of the unit cube has this many on average
MAX_NEIGHBOURS = 64  # radius_graph cap, loose enough not to bind often
# Bytes per matrix entry of the naive versions: float32 distances, the boolean adjacency and
# the int64 running count of the cap (radius); distances and topk scratch (knn).
NAIVE_BYTES = {"radius_graph": 4 + 1 + 8, "knn_graph": 4 + 4}


def radius_for(n: int) -> float:
    return (3 * MEAN_NEIGHBOURS / (4 * math.pi * n)) ** (1 / 3)


def points(n: int, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, generator=g).to(device)


def naive_radius_graph(x: torch.Tensor, r: float, cap: int) -> torch.Tensor:
    adj = torch.cdist(x, x) < r
    adj.fill_diagonal_(False)
    adj &= adj.cumsum(dim=1) <= cap
    target, source = adj.nonzero(as_tuple=True)
    return torch.stack([source, target])


def naive_knn_graph(x: torch.Tensor, k: int) -> torch.Tensor:
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    source = d.topk(k, dim=1, largest=False).indices
    target = torch.arange(x.shape[0], device=x.device).repeat_interleave(k)
    return torch.stack([source.reshape(-1), target])


def run_case(op: str, impl: str, n: int, repeat: int, threads: int) -> dict:
    """Runs in the child process: time one op, report its peak RSS growth."""
    import resource

    from diffcore.ops import knn_graph, radius_graph

    torch.set_num_threads(threads)

    x = points(n)
    calls = {
        ("radius_graph", "ours"): lambda: radius_graph(
            x, radius_for(n), max_num_neighbors=MAX_NEIGHBOURS, backend="torch"
        ),
        ("radius_graph", "naive"): lambda: naive_radius_graph(x, radius_for(n), MAX_NEIGHBOURS),
        ("knn_graph", "ours"): lambda: knn_graph(x, K, backend="torch"),
        ("knn_graph", "naive"): lambda: naive_knn_graph(x, K),
    }
    call = calls[(op, impl)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        edges = call()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"seconds": min(times), "peak_mib": (peak - before) / 1024, "edges": edges.shape[1]}


def child(op: str, impl: str, n: int, repeat: int, threads: int) -> dict:
    here = str(Path(__file__).parent)
    code = (
        f"import json, sys; sys.path.insert(0, {here!r}); import ops_graphs as b; "
        f"print(json.dumps(b.run_case({op!r}, {impl!r}, {n}, {repeat}, {threads})))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_section(sizes: list[int], naive_limit: float, threads: int) -> list[dict]:
    rows = []
    for op in ("radius_graph", "knn_graph"):
        for n in sizes:
            repeat = 3 if n <= 10_000 else 1
            ours = child(op, "ours", n, repeat, threads)
            naive_bytes = NAIVE_BYTES[op] * n * n
            if naive_bytes > naive_limit:
                naive = {
                    "skipped": f"N x N matrices need ~{naive_bytes / 2**30:.0f} GiB "
                    f"> limit {naive_limit / 2**30:.0f} GiB"
                }
            else:
                naive = child(op, "naive", n, repeat, threads)
            rows.append({"op": op, "n": n, "ours": ours, "naive": naive})
            print_cpu_row(rows[-1])
    return rows


def ratio(a: dict, b: dict, key: str) -> str:
    if key not in a or key not in b or a[key] <= 0:
        return "-"
    return f"{b[key] / a[key]:.1f}x"


def print_cpu_row(row: dict) -> None:
    ours, naive = row["ours"], row["naive"]
    if "error" in ours:
        print(f"{row['op']:<13}{row['n']:>8}  ours failed: {ours['error']}")
        return
    naive_s = f"{naive['seconds']:10.3f}" if "seconds" in naive else f"{'-':>10}"
    naive_m = f"{naive['peak_mib']:10.0f}" if "peak_mib" in naive else f"{'-':>10}"
    print(
        f"{row['op']:<13}{row['n']:>8}{ours['seconds']:10.3f}{naive_s}"
        f"{ratio(ours, naive, 'seconds'):>9}{ours['peak_mib']:10.0f}{naive_m}"
        f"{ratio(ours, naive, 'peak_mib'):>9}  {naive.get('skipped', naive.get('error', ''))}"
    )


def cuda_section(sizes: list[int]) -> list[dict]:
    from diffcore.ops import knn_graph, radius_graph

    rows = []
    print(
        f"\n{'op':<13}{'N':>8}{'triton s':>10}{'twin s':>10}{'speed-up':>9}"
        f"{'triton MiB':>11}{'twin MiB':>10}"
    )
    for op in ("radius_graph", "knn_graph"):
        for n in sizes:
            x = points(n, "cuda")
            result = {"op": op, "n": n}
            for backend in ("triton", "torch"):
                if op == "radius_graph":
                    call = functools.partial(
                        radius_graph,
                        x,
                        radius_for(n),
                        max_num_neighbors=MAX_NEIGHBOURS,
                        backend=backend,
                    )
                else:
                    call = functools.partial(knn_graph, x, K, backend=backend)
                call()  # compile / warm up
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                best = math.inf
                for _ in range(3):
                    start = time.perf_counter()
                    call()
                    torch.cuda.synchronize()
                    best = min(best, time.perf_counter() - start)
                peak = (torch.cuda.max_memory_allocated() - base) / 2**20
                result[backend] = {"seconds": best, "peak_mib": peak}
            rows.append(result)
            tri, twin = result["triton"], result["torch"]
            print(
                f"{op:<13}{n:>8}{tri['seconds']:10.4f}{twin['seconds']:10.4f}"
                f"{ratio(tri, twin, 'seconds'):>9}{tri['peak_mib']:11.0f}{twin['peak_mib']:10.0f}"
            )
    return rows


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--cuda-sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--naive-limit-gib", type=float, default=None)
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="CPU threads per case"
    )
    args = parser.parse_args()
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = ram / 2 if args.naive_limit_gib is None else args.naive_limit_gib * 2**30
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if cuda else f"cpu ({cpu_name()})"
    print(f"device: {device}; torch {torch.__version__}; {args.threads} CPU threads per case")
    print(
        f"uniform points in the unit cube; radius_graph: ~{MEAN_NEIGHBOURS} neighbours, "
        f"max_num_neighbors={MAX_NEIGHBOURS}; knn_graph: k={K}"
    )
    print("CPU: ours = diffcore.ops (torch backend), naive = torch.cdist on the full matrix;")
    print("ratios are naive / ours (higher is better for ours); memory is peak RSS growth.\n")
    print(
        f"{'op':<13}{'N':>8}{'ours s':>10}{'naive s':>10}{'time':>9}"
        f"{'ours MiB':>10}{'naive MiB':>10}{'memory':>9}"
    )
    results = {
        "device": device,
        "torch": torch.__version__,
        "cpu_threads": args.threads,
        "cpu": cpu_section(args.sizes, limit, args.threads),
    }
    if cuda:
        results["cuda"] = cuda_section(args.cuda_sizes)
    else:
        print("\nno CUDA device: Triton kernel vs twin speed-up not measured.")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Benchmark the 4-node orbit counter on community-small-like graphs.

Run alone: ``uv run python shared/bench/graph_metrics.py [--graphs 256] [--reference 16]``.

Compares ``difflab.science.metrics.orbit_counts`` (closed-form matrix counts, one batched call)
with its reference twin ``orbit_counts_enumerate`` (lists every connected 2-4 node subgraph),
on seeded community-small graphs (12-20 nodes). Checks that both agree, then prints the time
per graph and the ratio reference / fast; also times the whole GDSS graph evaluation
(degree, clustering, orbit, spectral MMD) of the same graphs against a second seeded draw.
Writes bench-results/graph_metrics.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from difflab.science.graphs import community_small, to_dense
from difflab.science.metrics import graph_mmds, orbit_counts, orbit_counts_enumerate

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench-results" / "graph_metrics.json"


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=256, help="graphs in the batch")
    parser.add_argument("--reference", type=int, default=16, help="graphs given to the twin")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    graphs = community_small(args.graphs, generator=torch.Generator().manual_seed(0))
    dense = to_dense(graphs, max_nodes=20, features="ones", max_feat_num=1)
    adj, mask = dense.adj.bool(), dense.mask

    fast = orbit_counts(adj, mask)  # warm-up and the values to check
    t_fast = best_of(lambda: orbit_counts(adj, mask), args.repeat)
    k = min(args.reference, args.graphs)
    ref = []
    t0 = time.perf_counter()
    for b in range(k):
        n = int(mask[b].sum())
        ref.append(orbit_counts_enumerate(adj[b, :n, :n].long()))
    t_ref = time.perf_counter() - t0
    for b in range(k):
        n = ref[b].shape[0]
        if not torch.equal(fast[b, :n], ref[b]):
            raise SystemExit(f"orbit counts disagree on graph {b}")

    other = community_small(args.graphs, generator=torch.Generator().manual_seed(1))
    t_eval = best_of(lambda: graph_mmds(graphs, other), 1)

    per_fast = t_fast / args.graphs
    per_ref = t_ref / k
    row = {
        "device": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "graphs": args.graphs,
        "mean_nodes": float(mask.sum(1).double().mean()),
        "fast_ms_per_graph": 1e3 * per_fast,
        "reference_ms_per_graph": 1e3 * per_ref,
        "reference_over_fast": per_ref / per_fast,
        "gdss_eval_s": t_eval,
    }
    print(f"device: {row['device']} | torch {row['torch']} | {row['threads']} threads")
    print(f"{args.graphs} community-small graphs, {row['mean_nodes']:.1f} nodes on average")
    print(f"orbit_counts (batched)   {row['fast_ms_per_graph']:8.3f} ms/graph")
    print(f"orbit_counts_enumerate   {row['reference_ms_per_graph']:8.3f} ms/graph ({k} graphs)")
    print(f"ratio reference / fast   {row['reference_over_fast']:8.1f}x (counts agree)")
    print(f"graph_mmds (4 MMDs, {args.graphs} vs {args.graphs} graphs): {t_eval:.2f} s")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()

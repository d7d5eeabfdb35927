"""Geometric ops with a pure-torch reference twin and Triton kernels for CUDA.

Every op takes ``backend="auto" | "torch" | "triton"``: "auto" runs the Triton kernels on CUDA
tensors (when triton imports) and the exact, memory-blocked torch twin elsewhere. Both give the
same neighbours; ties in distance always go to the lower index.

- `knn_graph`, `radius_graph`: PyG / torch-cluster graphs as (2, E) `edge_index`.
- `knn_points`, `knn_gather`, `chamfer_distance`: pytorch3d's point-cloud functions.
- `lincomb`: the fused multistep-solver update ``sum_k c_k x_k`` with per-sample coefficients.
"""

from ._dispatch import DEFAULT_MEMORY_BUDGET, Backend, triton_available
from .fused import lincomb
from .graphs import knn_graph, radius_graph
from .points import KNN, chamfer_distance, knn_gather, knn_points

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "KNN",
    "Backend",
    "chamfer_distance",
    "knn_gather",
    "knn_graph",
    "knn_points",
    "lincomb",
    "radius_graph",
    "triton_available",
]

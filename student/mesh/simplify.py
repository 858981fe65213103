"""Optional mesh simplification by vertex clustering.

Every vertex is snapped to a cell of a coarser ``resolution``^3 grid over the box; the vertices of a
cell merge into one at their mean position, and triangles that collapse or repeat are dropped. It is
a few vectorised numpy passes (linear time, no extra dependency). It can merge thin parts closer
than one cluster cell; that is the price of its speed. Colours are queried afterwards, at the merged
vertices (`mesh_from_field`), so they stay the decoder's own rather than cluster averages.
"""

from __future__ import annotations

import numpy as np

from pipeline.cameras import BOX_HALF


def simplify_by_clustering(vertices: np.ndarray, faces: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """vertices (N, 3) float32, faces (F, 3) int32 -> merged (K, 3) float32, (F', 3) int32."""
    if resolution < 2:
        raise ValueError(f"simplification resolution must be >= 2 cells, got {resolution}")
    cell = 2 * BOX_HALF / resolution
    ijk = np.clip(np.floor((vertices + BOX_HALF) / cell), 0, resolution - 1).astype(np.int64)  # (N, 3)
    key = (ijk[:, 0] * resolution + ijk[:, 1]) * resolution + ijk[:, 2]  # (N,)
    _, cluster, counts = np.unique(key, return_inverse=True, return_counts=True)  # cluster (N,) in [0, K)
    merged = cluster[faces]  # (F, 3)
    keep = (merged[:, 0] != merged[:, 1]) & (merged[:, 1] != merged[:, 2]) & (merged[:, 0] != merged[:, 2])
    merged = merged[keep]
    # Two triangles over the same three clusters are one triangle; keep the first one's winding.
    _, first = np.unique(np.sort(merged, axis=1), axis=0, return_index=True)
    merged = merged[np.sort(first)]

    sums = np.stack([np.bincount(cluster, weights=vertices[:, c], minlength=len(counts)) for c in range(3)], 1)
    means = sums / counts[:, None]  # (K, 3) float64
    # Clusters whose triangles all collapsed are left unreferenced: drop them and renumber.
    used = np.zeros(len(counts), dtype=bool)
    used[merged.ravel()] = True
    renumber = np.cumsum(used) - 1
    return means[used].astype(np.float32), renumber[merged].astype(np.int32)

"""Ground-truth mesh of a procedural scene in world units, by marching cubes on its SDF.

Used to score the student's exported meshes (Chamfer distance, docs/measuring.md §Chamfer). Sharp edges come out
bevelled by about one grid cell; at the default grid that is ~0.01 world units.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.measure import marching_cubes

from pipeline.procedural.scene import Scene


def scene_mesh(scene: Scene, grid: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) float32 in world units and faces (M, 3) int64, outward-facing (counter-clockwise
    seen from outside)."""
    if grid < 8:
        raise ValueError(f"grid must be >= 8 cells per side, got {grid}")
    # Two cells of margin so the surface never touches the grid border (which would leave holes).
    half = scene.bound_radius * (1 + 2 / grid) + 2 * (2 * scene.bound_radius / grid)
    axis = torch.linspace(-half, half, grid + 1, dtype=torch.float32)
    xs, ys, zs = torch.meshgrid(axis, axis, axis, indexing="ij")
    values = scene.sdf(torch.stack([xs, ys, zs], dim=-1))  # (G+1, G+1, G+1), index order x, y, z
    step = float(axis[1] - axis[0])
    verts, faces, _, _ = marching_cubes(values.numpy(), level=0.0, spacing=(step, step, step))
    # gradient_direction="descent" (the default): the SDF decreases into the solid, so triangles come
    # out counter-clockwise seen from outside.
    return (verts - half).astype(np.float32), np.ascontiguousarray(faces, dtype=np.int64)

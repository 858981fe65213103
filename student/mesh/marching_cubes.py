"""Density on a grid over the tri-plane box, then the level-set surface by marching cubes.

The grid has ``grid`` cells (``grid + 1`` samples) per axis over [-BOX_HALF, BOX_HALF]^3, sample
``(i, j, k)`` at world ``(x_i, y_j, z_k)``, so marching-cubes vertices map to world units by one
scale and offset.

Coarse to fine: a dense 129^3 grid is 2.1 M decoder queries (about 2 s on 2 CPU cores: 21 ms per 65 k
grid_sample points per plane, docs/measuring.md §Reference numbers), but the surface crosses only a thin
shell of it. So the
field is sampled every ``coarse_stride`` cells first and the fine grid is filled by trilinear
interpolation of those samples (a convex combination: inside a coarse cell whose corners are all on
one side of the level it never crosses the level). Then the surface is followed: every coarse cell
whose samples are not all on one side is sampled at full resolution, which can reveal that the surface
leaves through one of its faces into a neighbour (a true sample on the shared face on the other side of
that neighbour's corners), so the neighbour is sampled next, until no unsampled cell is crossed. Only
cells the surface passes through are refined (about 7x fewer queries than refining a band around it).
A feature that touches no coarse sample and is not connected to one that does (thinner than one coarse
cell, ``coarse_stride`` fine cells) can be missed; ``coarse_stride=1`` samples densely.

Density level: see `student.mesh.config.default_sigma_level`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.cameras import BOX_HALF
from student.mesh.config import MeshConfig, default_sigma_level
from student.mesh.field import DensityField, query_chunked

# MeshConfig and default_sigma_level live in `student.mesh.config` (torch-free); re-exported for callers here.
__all__ = ["EmptySurfaceError", "MeshConfig", "default_sigma_level", "extract_surface", "sample_density_grid"]


class EmptySurfaceError(ValueError):
    """The density never crosses the level inside the box: there is no surface to write."""


def grid_axis(grid: int) -> np.ndarray:
    """(grid + 1,) float32 world coordinates of the samples along one axis."""
    return np.linspace(-BOX_HALF, BOX_HALF, grid + 1, dtype=np.float32)


def sample_density_grid(field: DensityField, config: MeshConfig) -> np.ndarray:
    """Density at every grid sample, (G+1, G+1, G+1) float32, zero on the box faces.

    The box faces are zero because the renderer sees nothing outside the box: an object that touches
    the box is closed there instead of left with a hole.
    """
    s, n = config.coarse_stride, config.grid + 1
    axis = grid_axis(config.grid)
    coarse = _query_grid(field, axis[::s], config.chunk)  # (A, A, A), A = G/s + 1
    _zero_box_faces(coarse)
    if s == 1:
        return coarse
    fill = F.interpolate(torch.from_numpy(coarse)[None, None], size=(n, n, n), mode="trilinear", align_corners=True)
    volume = fill[0, 0].numpy()  # (G+1,)^3, a view of this function's own tensor: written in place below
    sampled = np.zeros(volume.shape, dtype=bool)  # (G+1,)^3 samples holding true densities
    sampled[::s, ::s, ::s] = True
    done = np.zeros((config.grid // s,) * 3, dtype=bool)  # (G/s,)^3 coarse cells sampled at full resolution
    while True:
        inside = volume >= config.level
        todo = _block_any(inside, s) & _block_any(~inside, s) & ~done  # crossed, not yet refined
        if not todo.any():
            return volume
        ii, jj, kk = np.nonzero(_cell_samples(todo, s) & ~sampled)
        sigma, _ = query_chunked(field, np.stack([axis[ii], axis[jj], axis[kk]], axis=1), config.chunk)
        volume[ii, jj, kk] = sigma
        sampled[ii, jj, kk] = True
        done |= todo
        _zero_box_faces(volume)


def extract_surface(field: DensityField, config: MeshConfig) -> tuple[np.ndarray, np.ndarray]:
    """The level set of the field's density: vertices (N, 3) float32 world units, faces (F, 3) int32.

    Raises EmptySurfaceError when no grid sample reaches the level.
    """
    volume = sample_density_grid(field, config)
    return surface_from_volume(volume, config.level)


def surface_from_volume(volume: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes on a (G+1,)^3 density grid over the box; see `extract_surface`."""
    from skimage.measure import marching_cubes  # ~0.3 s import, paid only when meshing

    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise ValueError(f"volume must be a cube (G+1, G+1, G+1), got {volume.shape}")
    inside = volume >= level
    if not inside.any():
        raise EmptySurfaceError(
            f"no surface: the density never reaches the level {level:.3g} inside the box "
            f"(max {float(volume.max()):.3g}); try a lower level or another seed"
        )
    # Marching cubes only over the inside samples' bounding box plus one outside layer (the box
    # faces are zero, so that layer exists): small objects cost proportionally less.
    where = np.argwhere(inside)
    lo = np.maximum(where.min(0) - 1, 0)
    hi = np.minimum(where.max(0) + 2, volume.shape[0])
    crop = volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    cell = 2 * BOX_HALF / (volume.shape[0] - 1)
    # With density higher inside, skimage's "ascent" winding is counter-clockwise seen from outside (the
    # glTF / PLY convention: normals out, positive signed volume, checked by the sphere test).
    verts, faces, _, _ = marching_cubes(
        crop, level=level, spacing=(cell,) * 3, gradient_direction="ascent", allow_degenerate=False
    )
    verts = verts + (lo * cell - BOX_HALF)  # grid index space -> world units
    return verts.astype(np.float32), faces.astype(np.int32)


def _query_grid(field: DensityField, axis: np.ndarray, chunk: int) -> np.ndarray:
    """Density at the full tensor grid axis x axis x axis, (A, A, A) float32."""
    xs, ys, zs = np.meshgrid(axis, axis, axis, indexing="ij")  # (A, A, A) each
    sigma, _ = query_chunked(field, np.stack([xs, ys, zs], axis=-1).reshape(-1, 3), chunk)
    return sigma.reshape(xs.shape)


def _zero_box_faces(volume: np.ndarray) -> None:
    """In place, on a volume the caller owns."""
    volume[[0, -1], :, :] = 0
    volume[:, [0, -1], :] = 0
    volume[:, :, [0, -1]] = 0


def _block_any(mask: np.ndarray, s: int) -> np.ndarray:
    """(m s + 1,)^3 samples -> (m,)^3 cells: OR over each cell's closed block of (s + 1)^3 samples.

    Separable: per axis, the OR of the s samples starting the block, then of the one closing it.
    """
    out = mask
    for ax in range(3):
        m = (out.shape[ax] - 1) // s
        head = out[(slice(None),) * ax + (slice(0, m * s),)]
        head = head.reshape(out.shape[:ax] + (m, s) + out.shape[ax + 1 :]).any(axis=ax + 1)
        out = head | out[(slice(None),) * ax + (slice(s, None, s),)]
    return out


def _cell_samples(cells: np.ndarray, s: int) -> np.ndarray:
    """(m,)^3 cells -> (m s + 1,)^3 bool: the samples of the closed blocks of the given cells."""
    corner = np.argwhere(cells) * s  # (K, 3) first sample of each cell
    offsets = np.stack(np.meshgrid(*[np.arange(s + 1)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)  # ((s+1)^3, 3)
    idx = (corner[:, None, :] + offsets[None]).reshape(-1, 3)  # (K (s+1)^3, 3)
    mask = np.zeros((cells.shape[0] * s + 1,) * 3, dtype=bool)
    mask[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return mask

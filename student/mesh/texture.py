"""A UV atlas for a mesh and the decoder's colour field baked into a texture image.

Vertex colours interpolate linearly across each triangle, so a coarse (or decimated) mesh shows the
colour field blurred to its triangle size; a texture samples the field once per texel instead, so the
colour detail no longer depends on the face count. `xatlas` cuts the surface into charts and packs them
into the unit square; each texel covered by a triangle in UV space is mapped back to its surface point
by the barycentric coordinates of its centre, and the field is queried there. Texels no triangle covers
(the gutters between charts) take the colour of the nearest covered texel, so bilinear filtering and
mipmaps at chart borders do not bleed background into the surface.

Image convention: row 0 is v = 1 (the OBJ / trimesh convention; trimesh flips it for glTF itself).
"""

from __future__ import annotations

import numpy as np
import torch

from student.mesh.field import DensityField, query_chunked
from student.mesh.mesh import Mesh
from student.render.pixels import to_uint8

MIN_TEXTURE, MAX_TEXTURE = 16, 8192
# Charts with boundaries no longer than this (world units, box edge = 2) keep xatlas's chart growing fast.
# Measured on a 20k-face sphere, 512 px: 0.5 -> ~1 s, 43 % of texels covered; 2.0 -> ~3.7 s, 57 %; no limit
# -> ~20 s (a few huge charts). Smaller charts waste more texels on borders, which matters less than seconds.
MAX_BOUNDARY_LENGTH = 0.5


def check_texture_size(size: int) -> int:
    if not MIN_TEXTURE <= size <= MAX_TEXTURE:
        raise ValueError(f"texture size must be in [{MIN_TEXTURE}, {MAX_TEXTURE}] pixels, got {size}")
    return size


def unwrap(mesh: Mesh, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A UV layout of ``mesh``: vmapping (N',) int64 into its vertices, faces (F, 3) int32, uv (N', 2) float32.

    The surface is split along chart seams: a seam vertex appears once per chart (vmapping says which).
    """
    import xatlas

    chart_options = xatlas.ChartOptions()
    chart_options.max_boundary_length = MAX_BOUNDARY_LENGTH
    pack_options = xatlas.PackOptions()
    pack_options.resolution = size
    pack_options.padding = 1  # texels between charts; the gutter fill covers bilinear lookups at borders
    atlas = xatlas.Atlas()
    atlas.add_mesh(mesh.vertices, mesh.faces.astype(np.uint32))
    atlas.generate(chart_options, pack_options)
    vmapping, indices, uv = atlas[0]  # (N',) into the input vertices, (F, 3), (N', 2)
    return vmapping.astype(np.int64), indices.astype(np.int32), np.clip(uv, 0.0, 1.0).astype(np.float32)


def rasterize_uv(uv: np.ndarray, faces: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texels whose centre lies in a triangle of the UV layout.

    uv (N, 2) in [0, 1], faces (F, 3) -> face (T,) int64, texel (T, 2) int64 (row, column), bary (T, 3)
    float32, one entry per covered texel (the first triangle when charts touch).
    """
    # Pixel coordinates: x = u * size, y = (1 - v) * size; texel (r, c) has its centre at (c + 0.5, r + 0.5).
    corners = np.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size], axis=-1)[faces].astype(np.float64)  # (F, 3, 2)
    lo = np.clip(np.ceil(corners.min(1) - 0.5), 0, size - 1).astype(np.int64)  # (F, 2) first texel x, y
    hi = np.clip(np.floor(corners.max(1) - 0.5), 0, size - 1).astype(np.int64)  # (F, 2) last texel x, y
    extent = np.maximum(hi - lo + 1, 0)  # (F, 2)
    count = extent[:, 0] * extent[:, 1]  # (F,) candidate texels in each bounding box
    face = np.repeat(np.arange(len(faces)), count)  # (K,)
    local = np.arange(len(face)) - np.repeat(np.cumsum(count) - count, count)  # (K,) index inside its box
    width = extent[face, 0]
    x = lo[face, 0] + local % np.maximum(width, 1)
    y = lo[face, 1] + local // np.maximum(width, 1)
    p = np.stack([x + 0.5, y + 0.5], axis=-1)  # (K, 2) texel centres
    a, b, c = corners[face, 0], corners[face, 1], corners[face, 2]  # (K, 2) each

    def cross(o, s, t):  # z of (s - o) x (t - o)
        return (s[:, 0] - o[:, 0]) * (t[:, 1] - o[:, 1]) - (s[:, 1] - o[:, 1]) * (t[:, 0] - o[:, 0])

    area = cross(a, b, c)  # (K,) signed; charts may be mirrored, so either sign is a triangle
    safe = np.where(np.abs(area) > 1e-12, area, 1.0)
    bary = np.stack([cross(p, b, c), cross(a, p, c), cross(a, b, p)], axis=-1) / safe[:, None]  # (K, 3)
    inside = (np.abs(area) > 1e-12) & (bary >= -1e-6).all(axis=1)
    face, x, y, bary = face[inside], x[inside], y[inside], bary[inside]
    _, first = np.unique(y * size + x, return_index=True)
    return face[first], np.stack([y[first], x[first]], axis=-1), bary[first].astype(np.float32)


def bake_texture(mesh: Mesh, field: DensityField, size: int, chunk: int = 65536) -> Mesh:
    """``mesh`` unwrapped (`unwrap`) with the field's colour baked into a (size, size, 3) uint8 texture."""
    from scipy.ndimage import distance_transform_edt

    check_texture_size(size)
    vmapping, faces, uv = unwrap(mesh, size)
    vertices = mesh.vertices[vmapping]  # (N', 3)
    face, texel, bary = rasterize_uv(uv, faces, size)  # (T,), (T, 2), (T, 3)
    if len(face) == 0:
        raise ValueError(f"no texel of a {size}x{size} texture is covered by the UV layout; use a larger size")
    corners = vertices[faces[face]]  # (T, 3, 3)
    points = np.einsum("tk,tkd->td", bary, corners).astype(np.float32)  # (T, 3) surface points
    _, rgb = query_chunked(field, points, chunk)  # (T, 3) in [0, 1]
    texture = np.zeros((size, size, 3), dtype=np.uint8)
    texture[texel[:, 0], texel[:, 1]] = to_uint8(torch.from_numpy(rgb)).numpy()
    covered = np.zeros((size, size), dtype=bool)
    covered[texel[:, 0], texel[:, 1]] = True
    nearest = distance_transform_edt(~covered, return_distances=False, return_indices=True)  # (2, size, size)
    return Mesh(vertices, faces, mesh.colours[vmapping], uv=uv, texture=texture[nearest[0], nearest[1]])

"""A small ray-cast renderer for textured meshes, so tests can show the oracle what a viewer would show.

Each pixel's ray hits the nearest triangle (Moller-Trumbore against every triangle, in chunks of rays);
the hit's barycentric coordinates interpolate the UVs, the texture is sampled there (nearest texel) and
shaded with the procedural teacher's light (`pipeline.procedural.render.shade_normals`) on white.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.cameras import Cameras
from pipeline.procedural.render import shade_normals
from student.mesh.mesh import Mesh


def _first_hits(origins: torch.Tensor, dirs: torch.Tensor, tri: torch.Tensor, chunk: int = 256):
    """Rays (R, 3), triangles (F, 3, 3) -> face (R,) (-1 = miss), barycentric (u, v) (R, 2) of the nearest hit."""
    a, e1, e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]  # (F, 3) each
    faces, uvs = [], []
    for start in range(0, len(origins), chunk):
        o, d = origins[start : start + chunk, None], dirs[start : start + chunk, None]  # (r, 1, 3)
        p = torch.linalg.cross(d.expand(-1, len(tri), -1), e2[None].expand(len(o), -1, -1))  # (r, F, 3)
        det = (e1[None] * p).sum(-1)  # (r, F)
        inv = 1.0 / torch.where(det.abs() > 1e-12, det, torch.ones_like(det))
        s = o - a[None]  # (r, F, 3)
        u = (s * p).sum(-1) * inv
        q = torch.linalg.cross(s, e1[None].expand_as(s))
        v = (d * q).sum(-1) * inv
        t = (e2[None] * q).sum(-1) * inv
        hit = (det.abs() > 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        t = torch.where(hit, t, torch.inf)
        best = t.argmin(-1)  # (r,)
        rows = torch.arange(len(o))
        faces.append(torch.where(hit[rows, best], best, -1))
        uvs.append(torch.stack([u[rows, best], v[rows, best]], -1))
    return torch.cat(faces), torch.cat(uvs)


def render_textured(mesh: Mesh, cameras: Cameras) -> np.ndarray:
    """(V, H, W, 3) uint8 views of a textured ``mesh``; vertex colours are ignored."""
    assert mesh.textured, "render_textured needs a textured mesh"
    origins, dirs = cameras.rays()  # (V, H, W, 3) each
    shape = origins.shape[:-1]
    tri = torch.from_numpy(mesh.vertices[mesh.faces])  # (F, 3, 3)
    face, bary = _first_hits(origins.reshape(-1, 3), dirs.reshape(-1, 3), tri)
    hit = (face >= 0).numpy()
    face, u, v = face.numpy()[hit], bary[hit, 0].numpy(), bary[hit, 1].numpy()
    corner_uv = mesh.uv[mesh.faces[face]]  # (K, 3, 2)
    uv = (1 - u - v)[:, None] * corner_uv[:, 0] + u[:, None] * corner_uv[:, 1] + v[:, None] * corner_uv[:, 2]
    size = mesh.texture.shape[0]
    row = np.clip(((1 - uv[:, 1]) * size).astype(int), 0, size - 1)
    col = np.clip((uv[:, 0] * size).astype(int), 0, size - 1)
    albedo = mesh.texture[row, col].astype(np.float32)  # (K, 3)
    e1, e2 = tri[face, 1] - tri[face, 0], tri[face, 2] - tri[face, 0]
    normals = torch.nn.functional.normalize(torch.linalg.cross(e1, e2), dim=-1)  # (K, 3) outward (CCW winding)
    light = shade_normals(normals).numpy()  # (K,)
    image = np.full((hit.size, 3), 255, dtype=np.uint8)
    image[hit] = np.clip(albedo * light[:, None], 0, 255).astype(np.uint8)
    return image.reshape(*shape, 3)

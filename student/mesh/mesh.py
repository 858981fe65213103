"""A coloured triangle mesh in world units (the frame of `pipeline.cameras`: z up, box [-1, 1]^3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mesh:
    """vertices (N, 3) float32 world units, faces (F, 3) int32 indices, colours (N, 3) uint8 RGB.

    Faces are wound counter-clockwise seen from outside, so normals point out of the object.
    A textured mesh (`student.mesh.texture.bake_texture`) also has uv (N, 2) float32 in [0, 1] and a
    texture (S, S, 3) uint8 whose row 0 is v = 1; it keeps its vertex colours for formats without textures.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colours: np.ndarray
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None

    def __post_init__(self) -> None:
        v, f, c = self.vertices, self.faces, self.colours
        if v.ndim != 2 or v.shape[1] != 3 or v.dtype != np.float32:
            raise ValueError(f"vertices must be float32 (N, 3), got {v.dtype} {v.shape}")
        if f.ndim != 2 or f.shape[1] != 3 or f.dtype != np.int32:
            raise ValueError(f"faces must be int32 (F, 3), got {f.dtype} {f.shape}")
        if c.shape != v.shape or c.dtype != np.uint8:
            raise ValueError(f"colours must be uint8 {v.shape}, got {c.dtype} {c.shape}")
        if len(f) and (f.min() < 0 or f.max() >= len(v)):
            raise ValueError(f"face indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")
        if self.uv is not None:
            uv = self.uv
            if uv.shape != (len(v), 2) or uv.dtype != np.float32:
                raise ValueError(f"uv must be float32 ({len(v)}, 2), got {uv.dtype} {uv.shape}")
            if len(uv) and (uv.min() < 0 or uv.max() > 1):
                raise ValueError(f"uv must lie in [0, 1], got [{uv.min()}, {uv.max()}]")
        t = self.texture
        if (t is None) != (self.uv is None):
            raise ValueError("uv and texture come together: give both or neither")
        if t is not None and (t.ndim != 3 or t.shape[2] != 3 or t.dtype != np.uint8):
            raise ValueError(f"texture must be uint8 (S, S, 3), got {t.dtype} {t.shape}")

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    @property
    def num_faces(self) -> int:
        return len(self.faces)

    @property
    def textured(self) -> bool:
        return self.texture is not None

    def bounds(self) -> np.ndarray:
        """(2, 3) float32: the min and max corner of the axis-aligned bounding box."""
        return np.stack([self.vertices.min(0), self.vertices.max(0)])

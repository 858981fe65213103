"""Vertex colours from the decoder: the view-independent colour at each vertex position.

The student's colour is a function of position only (docs/student.md §Architecture), so evaluating it at the vertex is
the colour every render of that surface point converges to once the surface is opaque.
"""

from __future__ import annotations

import numpy as np

from student.mesh.field import DensityField, query_chunked


def vertex_colours(field: DensityField, vertices: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """vertices (N, 3) float32 world units -> (N, 3) uint8 RGB."""
    _, rgb = query_chunked(field, vertices, chunk)  # (N, 3) in [0, 1]
    return to_uint8(rgb)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Colours in [0, 1] (clipped) -> uint8 with rounding, so 0.5 maps to 128 as most viewers expect."""
    return np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)

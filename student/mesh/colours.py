"""Vertex colours from the decoder: the view-independent colour at each vertex position.

The student's colour is a function of position only (docs/student.md §Architecture), so evaluating it at the vertex is
the colour every render of that surface point converges to once the surface is opaque.
"""

from __future__ import annotations

import numpy as np
import torch

from student.mesh.field import DensityField, query_chunked
from student.render.pixels import to_uint8


def vertex_colours(field: DensityField, vertices: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """vertices (N, 3) float32 world units -> (N, 3) uint8 RGB."""
    _, rgb = query_chunked(field, vertices, chunk)  # (N, 3) in [0, 1]
    return to_uint8(torch.from_numpy(rgb)).numpy()

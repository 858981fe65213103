"""The one thing meshing needs from a model: density and colour at world points.

The student's decoder is view-independent (docs/student.md §Architecture), so a single query per point gives both the
density that marching cubes thresholds and the colour the vertices carry. Anything with a
``query`` of this shape can be meshed: the generator bound to one sample's tri-planes in generation,
an analytic sphere in tests and in the benchmark.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class DensityField(Protocol):
    def query(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points (P, 3) float32 world units -> sigma (P,) >= 0 per world unit, rgb (P, 3) in [0, 1]."""
        ...


def query_chunked(field: DensityField, points: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Query ``field`` at ``points`` (P, 3) in chunks of at most ``chunk`` points.

    Chunking bounds the decoder's activation memory (P x hidden floats), which at a dense 128^3 grid
    would otherwise be gigabytes. Returns sigma (P,) float32 and rgb (P, 3) float32.
    """
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (P, 3), got {points.shape}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    sigma = np.empty(len(points), dtype=np.float32)
    rgb = np.empty((len(points), 3), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(points), chunk):
            block = torch.from_numpy(np.ascontiguousarray(points[start : start + chunk], dtype=np.float32))
            s, c = field.query(block)  # (p,), (p, 3)
            if s.shape != block.shape[:1] or c.shape != block.shape:
                raise ValueError(
                    f"field.query must return sigma ({len(block)},) and rgb ({len(block)}, 3), "
                    f"got {tuple(s.shape)} and {tuple(c.shape)}"
                )
            sigma[start : start + len(block)] = s.float().numpy()
            rgb[start : start + len(block)] = c.float().numpy()
    if not np.isfinite(sigma).all():
        raise ValueError(f"the density field returned {int((~np.isfinite(sigma)).sum())} non-finite values")
    return sigma, rgb

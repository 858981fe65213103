"""A procedural scene: one shape in one colour, with the per-seed yaw, scale and shade that make a
prompt a distribution (as MVDream's seeds do), and its signed distance field in world units.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch

from pipeline.cameras import BOX_HALF
from pipeline.procedural.parser import SceneSpec
from pipeline.procedural.shapes import SHAPE_GEOMETRY
from pipeline.procedural.vocabulary import COLOURS


@dataclass(frozen=True)
class SceneVariation:
    """Ranges (low, high) the per-seed parameters are drawn from, uniformly."""

    yaw_deg: tuple[float, float] = (0.0, 360.0)
    scale_jitter: tuple[float, float] = (0.85, 1.05)  # multiplies the size word's factor
    shade: tuple[float, float] = (0.8, 1.0)  # multiplies the albedo; <= 1 so shading never clips


DEFAULT_VARIATION = SceneVariation()


def yaw_matrix(yaw_deg: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotations about world z (up) by `yaw_deg` (...,), counter-clockwise seen from above."""
    a = torch.deg2rad(yaw_deg)
    c, s = torch.cos(a), torch.sin(a)
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    rows = [torch.stack([c, -s, zero], -1), torch.stack([s, c, zero], -1), torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, dim=-2)


@dataclass(frozen=True)
class Scene:
    """One shape at the origin: world point = scale * R_z(yaw) @ canonical point."""

    spec: SceneSpec
    yaw_deg: float
    scale: float
    shade: float

    def __post_init__(self) -> None:
        radius = self.scale * SHAPE_GEOMETRY[self.spec.shape].bound_radius
        if not 0 < radius < BOX_HALF:
            raise ValueError(f"scene radius {radius:.3f} must lie in (0, {BOX_HALF}) (scale {self.scale})")
        if not 0 < self.shade <= 1:
            raise ValueError(f"shade must lie in (0, 1], got {self.shade}")

    @property
    def albedo(self) -> tuple[float, float, float]:
        """The surface colour before lighting: the named colour darkened by this seed's shade."""
        r, g, b = COLOURS[self.spec.colour]
        return (r * self.shade, g * self.shade, b * self.shade)

    @property
    def bound_radius(self) -> float:
        """World radius of a ball around the origin that holds the whole shape."""
        return self.scale * SHAPE_GEOMETRY[self.spec.shape].bound_radius

    def rotation(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(3, 3) canonical -> world rotation."""
        return yaw_matrix(torch.tensor(self.yaw_deg, dtype=torch.float64)).to(dtype)

    def to_local(self, points: torch.Tensor) -> torch.Tensor:
        """(..., 3) world -> canonical frame (unit scale, yaw 0)."""
        # Row vectors: (R^T p)^T = p^T R.
        return points @ self.rotation(points.dtype).to(points.device) / self.scale

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """(..., 3) world points -> (...,) signed distance in world units, negative inside."""
        return SHAPE_GEOMETRY[self.spec.shape].sdf(self.to_local(points)) * self.scale


def scene_seed(spec: SceneSpec, seed: int) -> int:
    """A 63-bit generator seed from (spec, seed), stable across processes and Python versions."""
    blob = f"scene|{spec.colour}|{spec.shape}|{spec.size}|{seed}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") >> 1


def sample_scene(spec: SceneSpec, seed: int, variation: SceneVariation = DEFAULT_VARIATION) -> Scene:
    """The scene of one (spec, seed): deterministic in both, independent of anything else drawn."""
    rng = torch.Generator().manual_seed(scene_seed(spec, seed))
    u = torch.rand(3, generator=rng, dtype=torch.float64).tolist()

    def lerp(lo_hi: tuple[float, float], x: float) -> float:
        return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * x

    yaw = lerp(variation.yaw_deg, u[0])
    scale = spec.size_factor * lerp(variation.scale_jitter, u[1])
    return Scene(spec=spec, yaw_deg=math.fmod(yaw, 360.0), scale=scale, shade=lerp(variation.shade, u[2]))

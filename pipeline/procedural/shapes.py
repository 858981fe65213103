"""Canonical geometry of the procedural shapes: signed distance functions at unit scale, yaw 0.

Every shape is centred on the origin with its axis along world z (up). Distances are exact or, for
the flat-sided cone and pyramid, the maximum of the signed face-plane distances: exact inside and a
lower bound outside. Both are 1-Lipschitz, which is what sphere tracing needs to never step through a
surface, and both vanish exactly on the surface, which is what marching cubes needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import torch


def _box_2d(q: torch.Tensor) -> torch.Tensor:
    """Signed distance from the offsets `q` (..., k) = |p| - half-extents of an axis-aligned box."""
    outside = q.clamp_min(0).norm(dim=-1)
    inside = q.max(dim=-1).values.clamp_max(0)
    return outside + inside


def _rho(p: torch.Tensor) -> torch.Tensor:
    """(...,) distance from the z axis."""
    return p[..., :2].norm(dim=-1)


CUBE_HALF = 0.37
SPHERE_RADIUS = 0.5
CYLINDER_RADIUS, CYLINDER_HALF_HEIGHT = 0.30, 0.52
CONE_RADIUS, CONE_BOTTOM, CONE_APEX = 0.38, -0.45, 0.55
TORUS_MAJOR, TORUS_MINOR = 0.42, 0.16
# Proportions keep silhouettes apart at low elevation, where the oracle tells shapes by outline alone:
# the cylinder is tall (width/height 0.58) where the cube is square, the cone tall (0.76) where the
# pyramid is squat (1.33 face-on, 1.89 corner-on).
PYRAMID_HALF, PYRAMID_BOTTOM, PYRAMID_APEX = 0.44, -0.28, 0.38


def cube_sdf(p: torch.Tensor) -> torch.Tensor:
    return _box_2d(p.abs() - CUBE_HALF)


def sphere_sdf(p: torch.Tensor) -> torch.Tensor:
    return p.norm(dim=-1) - SPHERE_RADIUS


def cylinder_sdf(p: torch.Tensor) -> torch.Tensor:
    q = torch.stack([_rho(p) - CYLINDER_RADIUS, p[..., 2].abs() - CYLINDER_HALF_HEIGHT], dim=-1)
    return _box_2d(q)


def cone_sdf(p: torch.Tensor) -> torch.Tensor:
    # Meridian plane (rho, z): the slanted side runs from the rim (R, bottom) to the apex (0, apex).
    height = CONE_APEX - CONE_BOTTOM
    side = (height * _rho(p) + CONE_RADIUS * (p[..., 2] - CONE_APEX)) / math.hypot(height, CONE_RADIUS)
    return torch.maximum(side, CONE_BOTTOM - p[..., 2])


def torus_sdf(p: torch.Tensor) -> torch.Tensor:
    # Lying flat (hole along z), like a ring on a table.
    q = torch.stack([_rho(p) - TORUS_MAJOR, p[..., 2]], dim=-1)
    return q.norm(dim=-1) - TORUS_MINOR


def pyramid_sdf(p: torch.Tensor) -> torch.Tensor:
    # Square base; the four sides are mirror images, so |x| and |y| cover them with two planes.
    height = PYRAMID_APEX - PYRAMID_BOTTOM
    norm = math.hypot(height, PYRAMID_HALF)
    z_term = PYRAMID_HALF * (p[..., 2] - PYRAMID_APEX)
    side_x = (height * p[..., 0].abs() + z_term) / norm
    side_y = (height * p[..., 1].abs() + z_term) / norm
    return torch.maximum(torch.maximum(side_x, side_y), PYRAMID_BOTTOM - p[..., 2])


@dataclass(frozen=True)
class ShapeGeometry:
    """A canonical shape: its SDF (..., 3) -> (...), a bounding-ball radius and its yaw symmetry.

    yaw_period_deg: rotating the shape about z by this angle maps it onto itself; 0 means every angle
    does (a solid of revolution), which lets the oracle skip the yaw search.
    """

    sdf: Callable[[torch.Tensor], torch.Tensor]
    bound_radius: float
    yaw_period_deg: float


SHAPE_GEOMETRY: MappingProxyType[str, ShapeGeometry] = MappingProxyType(
    {
        "cube": ShapeGeometry(cube_sdf, CUBE_HALF * math.sqrt(3), 90.0),
        "sphere": ShapeGeometry(sphere_sdf, SPHERE_RADIUS, 0.0),
        "cylinder": ShapeGeometry(cylinder_sdf, math.hypot(CYLINDER_RADIUS, CYLINDER_HALF_HEIGHT), 0.0),
        "cone": ShapeGeometry(cone_sdf, max(math.hypot(CONE_RADIUS, CONE_BOTTOM), CONE_APEX), 0.0),
        "torus": ShapeGeometry(torus_sdf, TORUS_MAJOR + TORUS_MINOR, 0.0),
        "pyramid": ShapeGeometry(
            pyramid_sdf, max(math.hypot(PYRAMID_HALF * math.sqrt(2), PYRAMID_BOTTOM), PYRAMID_APEX), 90.0
        ),
    }
)

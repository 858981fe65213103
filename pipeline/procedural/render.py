"""Render a procedural scene: sphere-traced, anti-aliased by supersampling, white background.

Shading is ambient + Lambert diffuse from one light FIXED IN THE WORLD, with no view-dependent term,
so a surface point has the same colour in every view: the multi-view consistency a teacher's views
should have, and what lets the student's view-independent colour decoder fit them exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.cameras import Cameras
from pipeline.procedural.scene import Scene
from pipeline.procedural.shapes import SHAPE_GEOMETRY
from pipeline.procedural.tracer import TraceConfig, sdf_normals, sphere_trace

# Direction towards the light, world frame (z up): above, slightly towards -y (where azimuth 0 looks from).
LIGHT_DIR = (0.35, -0.45, 0.82)
AMBIENT = 0.45
DIFFUSE = 0.55  # AMBIENT + DIFFUSE = 1: a fully lit point shows its albedo, never clipped


def _light(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    light = torch.tensor(LIGHT_DIR, dtype=dtype, device=device)
    return light / light.norm()


def shade_normals(normals: torch.Tensor) -> torch.Tensor:
    """(..., 3) world unit normals -> (...,) light intensity in [AMBIENT, 1]."""
    lambert = (normals * _light(normals.dtype, normals.device)).sum(-1).clamp_min(0)
    return AMBIENT + DIFFUSE * lambert


def trace_scene(scene: Scene, origins: torch.Tensor, dirs: torch.Tensor, config: TraceConfig = TraceConfig()):
    """Trace world rays (R, 3) against a scene.

    Returns hit (R,) bool and the canonical-frame points (H, 3) of the H hits (for normals).
    """
    geometry = SHAPE_GEOMETRY[scene.spec.shape]
    rot = scene.rotation(origins.dtype).to(origins.device)
    local_o = origins @ rot / scene.scale  # (R, 3)
    local_d = dirs @ rot  # (R, 3) still unit: a rotation
    hit, t = sphere_trace(geometry.sdf, geometry.bound_radius, local_o, local_d, config)
    points = local_o[hit] + t[hit, None] * local_d[hit]
    return hit, points


def render_scene(scene: Scene, cameras: Cameras, supersample: int = 2) -> torch.Tensor:
    """(V, H, W, 3) uint8 views of `scene` from `cameras`, H = W = cameras.resolution.

    Each pixel averages a supersample x supersample grid of rays through its area (a box filter).
    """
    if supersample < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    res, n = cameras.resolution, len(cameras)
    hi = cameras.with_resolution(res * supersample)
    origins, dirs = hi.rays()  # (V, R*s, R*s, 3) each
    origins, dirs = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    hit, points = trace_scene(scene, origins, dirs)
    geometry = SHAPE_GEOMETRY[scene.spec.shape]
    rot = scene.rotation(points.dtype).to(points.device)
    normals = sdf_normals(geometry.sdf, points) @ rot.T  # (H, 3) canonical -> world
    albedo = torch.tensor(scene.albedo, dtype=points.dtype, device=points.device)
    rgb = torch.ones_like(origins)  # (R, 3) white background
    rgb[hit] = albedo * shade_normals(normals).unsqueeze(1)
    image = rgb.reshape(n, res * supersample, res * supersample, 3).permute(0, 3, 1, 2)
    image = F.avg_pool2d(image, supersample)  # (V, 3, H, W)
    return (image.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8)

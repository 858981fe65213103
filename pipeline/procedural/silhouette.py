"""Ray-hit tests of the canonical shapes in closed form: silhouettes without marching.

The oracle compares silhouettes of every shape over yaws and scales per sample, tens of thousands of
rays each, so it needs hit/miss far cheaper than sphere tracing. Every shape but the torus is
convex and is the intersection of planes (cube, pyramid) or of a slab with a quadric region
q(p) <= 0 that is convex inside the slab (sphere, cylinder, cone): a ray hits it iff the interval
where it lies inside the planes and the bounding ball is non-empty and the quadratic q(t) along the
ray reaches <= 0 on it. The torus, the one non-convex shape, is sphere-traced. `tests/` checks every
shape against sphere tracing of its SDF in `shapes.py`.
"""

from __future__ import annotations

import math

import torch

from pipeline.procedural import shapes as S
from pipeline.procedural.tracer import TraceConfig, sphere_trace


def _clip_planes(
    o: torch.Tensor, d: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor, planes: list[tuple[tuple, float]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Narrow the ray intervals [t0, t1] (R,) to where n . p <= c holds for every plane (n, c)."""
    for normal, offset in planes:
        n = torch.tensor(normal, dtype=o.dtype, device=o.device)
        denom = d @ n  # (R,)
        slack = offset - o @ n  # (R,) >= 0 where the origin is inside this half-space
        t = slack / torch.where(denom == 0, torch.ones_like(denom), denom)
        t0 = torch.where(denom < 0, torch.maximum(t0, t), t0)  # entering the half-space
        t1 = torch.where(denom > 0, torch.minimum(t1, t), t1)  # leaving it
        t1 = torch.where((denom == 0) & (slack < 0), torch.full_like(t1, -math.inf), t1)  # parallel, outside
    return t0, t1


def _quadric_reaches(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor
) -> torch.Tensor:
    """(R,) bool: q(t) = a t^2 + 2 b t + c is <= 0 somewhere on the finite interval [t0, t1]."""
    vertex = torch.where(a > 0, -b / a.clamp_min(1e-12), t0).clamp(min=t0, max=t1)
    candidates = torch.stack([t0, t1, vertex])  # (3, R): a quadratic's minimum on an interval is at one
    values = a * candidates**2 + 2 * b * candidates + c
    return values.min(dim=0).values <= 0


def _coeffs(o: torch.Tensor, d: torch.Tensor, weights: tuple[float, float, float], centre_z: float, rhs: float):
    """Coefficients (a, b, c) of q(t) = sum_i w_i (p_i - centre_i)^2 - rhs along p = o + t d (centre (0, 0, z))."""
    w = torch.tensor(weights, dtype=o.dtype, device=o.device)
    oc = o - torch.tensor([0.0, 0.0, centre_z], dtype=o.dtype, device=o.device)
    return (d * d) @ w, (oc * d) @ w, (oc * oc) @ w - rhs


def silhouette_hits(shape: str, origins: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """(R,) bool: does each ray (canonical frame, unit dirs (R, 3), origins (R, 3)) hit the shape?"""
    geometry = S.SHAPE_GEOMETRY[shape]
    if shape == "torus":
        hit, _ = sphere_trace(geometry.sdf, geometry.bound_radius, origins, dirs, TraceConfig())
        return hit
    o, d = origins, dirs
    b = (o * d).sum(-1)  # bounding ball, |d| = 1
    disc = b * b - ((o * o).sum(-1) - geometry.bound_radius**2)
    root = disc.clamp_min(0).sqrt()
    t0, t1 = (-b - root).clamp_min(0), torch.where(disc > 0, -b + root, torch.full_like(b, -math.inf))
    if shape == "cube":
        h = S.CUBE_HALF
        axes = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
        planes = [(n, h) for n in axes] + [(tuple(-x for x in n), h) for n in axes]
        t0, t1 = _clip_planes(o, d, t0, t1, planes)
        return t0 <= t1
    if shape == "pyramid":
        height, half = S.PYRAMID_APEX - S.PYRAMID_BOTTOM, S.PYRAMID_HALF
        # Side x: height * x + half * z <= half * apex (through the apex and the base edge x = half).
        sides = [((height, 0.0, half), half * S.PYRAMID_APEX), ((-height, 0.0, half), half * S.PYRAMID_APEX)]
        sides += [((0.0, height, half), half * S.PYRAMID_APEX), ((0.0, -height, half), half * S.PYRAMID_APEX)]
        t0, t1 = _clip_planes(o, d, t0, t1, [((0.0, 0.0, -1.0), -S.PYRAMID_BOTTOM), *sides])
        return t0 <= t1
    if shape == "sphere":
        a, bq, c = _coeffs(o, d, (1.0, 1.0, 1.0), 0.0, S.SPHERE_RADIUS**2)
    elif shape == "cylinder":
        hz = S.CYLINDER_HALF_HEIGHT
        t0, t1 = _clip_planes(o, d, t0, t1, [((0.0, 0.0, 1.0), hz), ((0.0, 0.0, -1.0), hz)])
        a, bq, c = _coeffs(o, d, (1.0, 1.0, 0.0), 0.0, S.CYLINDER_RADIUS**2)
    elif shape == "cone":
        # Inside the slab bottom <= z <= apex, the solid is rho^2 <= k^2 (apex - z)^2 (the lower nappe).
        t0, t1 = _clip_planes(o, d, t0, t1, [((0.0, 0.0, 1.0), S.CONE_APEX), ((0.0, 0.0, -1.0), -S.CONE_BOTTOM)])
        k2 = (S.CONE_RADIUS / (S.CONE_APEX - S.CONE_BOTTOM)) ** 2
        a, bq, c = _coeffs(o, d, (1.0, 1.0, -k2), S.CONE_APEX, 0.0)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    inside = t0 <= t1
    return inside & _quadric_reaches(a, bq, c, t0, torch.where(inside, t1, t0))

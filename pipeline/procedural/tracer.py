"""Sphere tracing of one canonical shape along a flat batch of rays, vectorised over rays.

Rays are given in the shape's canonical frame (see `scene.Scene.to_local`). Marching starts where the
ray enters the shape's bounding ball and stops when it leaves it, so a miss costs a few steps; rays
that finished are dropped from the working set every step, so the cost follows the rays still
marching rather than the image size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TraceConfig:
    max_steps: int = 64
    hit_eps: float = 2e-4  # canonical units; a pixel at 256 px spans ~0.008 at the origin
    # A ray still marching after max_steps is grazing a surface (steps shrink near a face seen edge-on);
    # it counts as a hit when its distance is below this, which only moves silhouettes by << a pixel.
    graze_eps: float = 5e-3


def sphere_trace(
    sdf: Callable[[torch.Tensor], torch.Tensor],
    bound_radius: float,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    config: TraceConfig = TraceConfig(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """March rays (R, 3) with unit directions (R, 3) against a 1-Lipschitz SDF.

    Returns hit (R,) bool and t (R,) the distance along the ray to the surface (meaningful where hit).
    """
    if origins.shape != dirs.shape or origins.ndim != 2 or origins.shape[1] != 3:
        raise ValueError(f"origins and dirs must both be (R, 3), got {tuple(origins.shape)} {tuple(dirs.shape)}")
    # Entry and exit of the bounding ball: |o + t d|^2 = r^2 with |d| = 1.
    b = (origins * dirs).sum(-1)  # (R,)
    disc = b * b - ((origins * origins).sum(-1) - bound_radius**2)
    root = disc.clamp_min(0).sqrt()
    t = (-b - root).clamp_min(0)  # (R,)
    t_exit = -b + root
    hit = torch.zeros_like(t, dtype=torch.bool)
    active = torch.nonzero((disc > 0) & (t_exit > 0)).squeeze(1)  # (A,) indices still marching
    o, d, ta, te = origins[active], dirs[active], t[active], t_exit[active]
    dist = torch.empty(0, dtype=t.dtype, device=t.device)
    for _ in range(config.max_steps):
        if active.numel() == 0:
            break
        dist = sdf(torch.addcmul(o, ta.unsqueeze(1), d))  # (A,)
        done_hit = dist < config.hit_eps
        ta = ta + dist
        done = done_hit | (ta > te)
        if bool(done.any()):
            finished = active[done]
            t[finished] = ta[done]
            hit[finished] = done_hit[done]
            keep = ~done
            active, o, d, ta, te, dist = active[keep], o[keep], d[keep], ta[keep], te[keep], dist[keep]
    if active.numel():
        t[active] = ta
        hit[active] = dist < config.graze_eps
    return hit, t


def sdf_normals(sdf: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, h: float = 1e-3) -> torch.Tensor:
    """(P, 3) unit outward normals from central differences of the SDF at (P, 3) points."""
    offsets = torch.eye(3, dtype=points.dtype, device=points.device) * h  # (3, 3)
    probe = torch.cat([points[:, None, :] + offsets, points[:, None, :] - offsets], dim=1)  # (P, 6, 3)
    values = sdf(probe)  # (P, 6)
    grad = values[:, :3] - values[:, 3:]  # (P, 3)
    return grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)

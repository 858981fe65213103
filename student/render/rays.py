"""Camera rays for the student renderer, from the project's one ray generator (`pipeline.cameras.Cameras.rays`).

The procedural teacher casts its rays with the same function, so a student pixel and a teacher pixel see the
same ray (docs/design.md §Cameras). Rays are clipped to the tri-plane box [-BOX_HALF, BOX_HALF]^3, outside
which the planes hold no features.
"""

from __future__ import annotations

import torch

from pipeline.cameras import BOX_HALF, Cameras


def camera_rays(c2w: torch.Tensor, fovy: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """c2w (B, V, 4, 4), fovy (B, V) degrees -> origins, unit directions (B, V*H*W, 3), H = W = resolution."""
    b, v = fovy.shape
    assert c2w.shape == (b, v, 4, 4), f"c2w must be ({b}, {v}, 4, 4), got {tuple(c2w.shape)}"
    origins, dirs = Cameras(c2w.reshape(b * v, 4, 4), fovy.reshape(b * v), resolution).rays()  # (BV, H, W, 3)
    n = v * resolution * resolution
    return origins.reshape(b, n, 3), dirs.reshape(b, n, 3)  # (BV, H, W, 3) -> (B, V*H*W, 3)


def ray_box_bounds(
    origins: torch.Tensor, dirs: torch.Tensor, half: float = BOX_HALF
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab-method entry and exit distances of rays through the box [-half, half]^3.

    origins, dirs (..., 3) -> near, far, hit (...). Rays that miss get near = far = 0 (zero-length segments,
    so they composite to the background).
    """
    # Directions with a zero component would divide by zero; nudge them (the slab is then simply never left).
    safe = torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0 = (-half - origins) / safe
    t1 = (half - origins) / safe
    near = torch.minimum(t0, t1).amax(dim=-1).clamp(min=0)
    far = torch.maximum(t0, t1).amin(dim=-1)
    hit = far > near
    zero = torch.zeros_like(near)
    return torch.where(hit, near, zero), torch.where(hit, far, zero), hit

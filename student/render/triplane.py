"""Tri-plane feature lookup: three distinct axis-aligned planes XY, XZ and YZ.

A point (x, y, z) in the box [-BOX_HALF, BOX_HALF]^3 reads plane XY at (x, y), plane XZ at (x, z) and plane YZ
at (y, z), bilinearly. EG3D's `generate_planes` builds XY, XZ and a third plane whose projection is ZX, the
transpose of XZ (the 'effectively XY/XZ/ZX' defect, docs/student.md §Differences from EG3D): two planes then
see the same pair of axes and no plane sees (y, z). Here each plane stores its first named axis along the
image width and its second along the image height: plane[:, :, row, col] is indexed row <- second axis, col <-
first axis, both increasing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.cameras import BOX_HALF

# (width axis, height axis) of each plane, in the order the synthesis network emits them.
PLANE_AXES = ((0, 1), (0, 2), (1, 2))  # XY, XZ, YZ
PLANE_NAMES = ("XY", "XZ", "YZ")


def project_to_planes(points: torch.Tensor, half: float = BOX_HALF) -> torch.Tensor:
    """points (B, P, 3) world units -> grid_sample coordinates (B, 3, P, 2) in [-1, 1] (x = width, y = height)."""
    assert points.ndim == 3 and points.shape[-1] == 3, f"points must be (B, P, 3), got {tuple(points.shape)}"
    # Basic slicing (views) rather than indexing with the axis lists, which gathers three times as slowly.
    coords = [points[..., a : b + 1 : b - a] for a, b in PLANE_AXES]  # 3 x (B, P, 2): (x, y), (x, z), (y, z)
    return torch.stack(coords, dim=1) / half  # (B, 3, P, 2)


def sample_triplane_planar(planes: torch.Tensor, points: torch.Tensor, half: float = BOX_HALF) -> torch.Tensor:
    """planes (B, 3, C, R, R), points (B, P, 3) -> per-plane features (B, 3, C, P), contiguous; zero outside the box.

    grid_sample's own layout: the decoder reduces over the plane axis here, where every plane's values are
    contiguous, and its backward hands grid_sample a contiguous gradient (`TriplaneDecoder.decode_planar`)."""
    b, n_planes, c, r, _ = planes.shape
    assert n_planes == 3 and planes.shape[-1] == r, f"planes must be (B, 3, C, R, R), got {tuple(planes.shape)}"
    assert points.shape[0] == b, f"points batch {points.shape[0]} != planes batch {b}"
    p = points.shape[1]
    grid = project_to_planes(points, half).reshape(b * 3, 1, p, 2)  # (B, 3, P, 2) -> (3B, 1, P, 2)
    # align_corners=False: the plane's R texels tile [-half, half] edge to edge, as EG3D samples its planes.
    feats = F.grid_sample(
        planes.reshape(b * 3, c, r, r), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return feats.reshape(b, 3, c, p)  # (3B, C, 1, P) -> (B, 3, C, P), a view


def sample_triplane(planes: torch.Tensor, points: torch.Tensor, half: float = BOX_HALF) -> torch.Tensor:
    """planes (B, 3, C, R, R), points (B, P, 3) -> per-plane features (B, 3, P, C); zero outside the box.

    The point-major view of `sample_triplane_planar` (a transposed view, not a copy): the reference layout of
    `TriplaneDecoder.forward`."""
    return sample_triplane_planar(planes, points, half).transpose(2, 3)  # (B, 3, C, P) -> (B, 3, P, C)

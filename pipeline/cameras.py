"""One camera convention for the teacher dump, the student renderer and generation.

World frame: MVDream's (Blender), z up. A camera is a 4x4 camera-to-world matrix with OpenGL camera
axes (the camera looks down its -z, +y is up), a vertical field of view in degrees and a square
resolution; the principal point is the image centre.

Pixels: row ``i`` (down) and column ``j`` (right); the pixel centre is at ``(u, v) = (j + 0.5, i + 0.5)``
in pixel units, with ``u`` to the right and ``v`` down.

MVDream conditions its UNet on the 16 floats of a camera-to-world matrix on the *unit* sphere,
flattened row-major (docs/mvdream.md §Cameras). Rendering needs a distance and a field of
view that MVDream does not encode: ``DEFAULT_RADIUS`` and ``DEFAULT_FOVY_DEG`` below are the documented
choice, recorded per view in every shard so the student renders exactly the teacher's cameras.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# A 40 degree vertical field of view at radius 2.7 sees a half-height of 2.7 * tan(20 deg) = 0.98
# world units at the origin: an object inside the unit-radius ball fills most of the frame, the way
# MVDream's 256 px views frame an Objaverse object.
DEFAULT_FOVY_DEG = 40.0
DEFAULT_RADIUS = 2.7
# The student's tri-planes and the procedural scenes live in the box [-BOX_HALF, BOX_HALF]^3.
BOX_HALF = 1.0

# (x, y, z)_OpenGL -> (x, -z, y)_Blender; MVDream's `blender_coord=True` (docs/mvdream.md §Cameras, step 3).
_GL_TO_BLENDER = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def mvdream_camera_matrices(
    num_frames: int,
    elevation: float = 15.0,
    azimuth_start: float = 0.0,
    azimuth_span: float = 360.0,
    blender_coord: bool = True,
) -> np.ndarray:
    """MVDream's ``get_camera``: camera-to-world matrices on the unit sphere, float32 ``(F, 4, 4)``.

    Azimuths follow the reference's float ``arange`` (so a span that ``num_frames`` does not divide
    can yield one extra view, as upstream). Azimuth 0 looks from -Y, azimuth 90 from +X, positive
    elevation is above. Flatten each matrix row-major to get MVDream's 16-float camera condition.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    azimuths = np.arange(azimuth_start, azimuth_span + azimuth_start, azimuth_span / num_frames)
    mats = [_look_at_origin_gl(float(elevation), float(a)) for a in azimuths]
    if blender_coord:
        mats = [_GL_TO_BLENDER @ m for m in mats]
    return np.stack(mats).astype(np.float32)


def _look_at_origin_gl(elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """Unit-sphere camera in the OpenGL world (y up) looking at the origin, as MVDream builds it."""
    e, a = math.radians(elevation_deg), math.radians(azimuth_deg)
    pos = np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
    back = pos / np.linalg.norm(pos)
    right = np.cross(np.array([0.0, 1.0, 0.0]), back)
    right = right / np.linalg.norm(right)
    up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, pos
    return m


@dataclass(frozen=True)
class Cameras:
    """A batch of N pinhole cameras sharing one square resolution.

    c2w:       (N, 4, 4) float32 camera-to-world, world frame z up, OpenGL camera axes
    fovy_deg:  (N,)      float32 vertical field of view in degrees
    resolution: image side in pixels
    """

    c2w: torch.Tensor
    fovy_deg: torch.Tensor
    resolution: int

    def __post_init__(self) -> None:
        if self.c2w.ndim != 3 or self.c2w.shape[1:] != (4, 4):
            raise ValueError(f"c2w must be (N, 4, 4), got {tuple(self.c2w.shape)}")
        if self.fovy_deg.shape != self.c2w.shape[:1]:
            raise ValueError(f"fovy_deg must be ({self.c2w.shape[0]},), got {tuple(self.fovy_deg.shape)}")
        if self.resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {self.resolution}")
        if not bool(((self.fovy_deg > 0) & (self.fovy_deg < 180)).all()):
            raise ValueError(f"fovy_deg must lie in (0, 180), got {self.fovy_deg.tolist()}")

    def __len__(self) -> int:
        return self.c2w.shape[0]

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    def to(self, device: torch.device | str) -> Cameras:
        return Cameras(self.c2w.to(device), self.fovy_deg.to(device), self.resolution)

    def with_resolution(self, resolution: int) -> Cameras:
        return Cameras(self.c2w, self.fovy_deg, resolution)

    @property
    def origins(self) -> torch.Tensor:
        """(N, 3) camera centres in world units."""
        return self.c2w[:, :3, 3]

    def focal_px(self) -> torch.Tensor:
        """(N,) focal length in pixels: (res / 2) / tan(fovy / 2)."""
        return 0.5 * self.resolution / torch.tan(torch.deg2rad(self.fovy_deg) / 2)

    def rays(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel ray origins and unit directions through pixel centres.

        Returns origins (N, H, W, 3) and directions (N, H, W, 3) in world units, H = W = resolution.
        """
        n, r = len(self), self.resolution
        dtype, device = self.c2w.dtype, self.device
        centres = (torch.arange(r, dtype=dtype, device=device) + 0.5) / r * 2 - 1  # (R,) in (-1, 1)
        tan_half = torch.tan(torch.deg2rad(self.fovy_deg.to(dtype)) / 2).view(n, 1, 1)  # (N, 1, 1)
        x = centres.view(1, 1, r).expand(n, r, r) * tan_half  # (N, H, W), u to the right
        y = -centres.view(1, r, 1).expand(n, r, r) * tan_half  # (N, H, W), image v down = camera -y
        d_cam = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # (N, H, W, 3), camera looks down -z
        d_world = torch.einsum("nij,nhwj->nhwi", self.c2w[:, :3, :3], d_cam)
        d_world = d_world / d_world.norm(dim=-1, keepdim=True)
        origins = self.origins.view(n, 1, 1, 3).expand(n, r, r, 3)
        return origins, d_world

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project world points into each camera.

        points: (N, P, 3) world points (one set per camera).
        Returns uv (N, P, 2) in pixel units (u right, v down, pixel centres at +0.5) and depth (N, P),
        the distance along the camera's viewing axis (positive in front of the camera).
        """
        if points.ndim != 3 or points.shape[0] != len(self) or points.shape[2] != 3:
            raise ValueError(f"points must be ({len(self)}, P, 3), got {tuple(points.shape)}")
        w2c = torch.linalg.inv(self.c2w)  # (N, 4, 4)
        p_cam = torch.einsum("nij,npj->npi", w2c[:, :3, :3], points) + w2c[:, None, :3, 3]  # (N, P, 3)
        depth = -p_cam[..., 2]
        tan_half = torch.tan(torch.deg2rad(self.fovy_deg.to(points.dtype)) / 2).view(-1, 1)
        x_ndc = p_cam[..., 0] / (depth * tan_half)  # (N, P) in [-1, 1] inside the image
        y_ndc = p_cam[..., 1] / (depth * tan_half)
        u = (x_ndc + 1) / 2 * self.resolution
        v = (1 - y_ndc) / 2 * self.resolution
        return torch.stack([u, v], dim=-1), depth

    def intrinsics_normalised(self) -> torch.Tensor:
        """(N, 3, 3) intrinsics in units of the image side (EG3D's convention: cx = cy = 0.5)."""
        f = 0.5 / torch.tan(torch.deg2rad(self.fovy_deg) / 2)  # (N,)
        k = torch.zeros(len(self), 3, 3, dtype=self.c2w.dtype, device=self.device)
        k[:, 0, 0], k[:, 1, 1] = f, f
        k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = 0.5, 0.5, 1.0
        return k

    def eg3d_label(self) -> torch.Tensor:
        """(N, 25) EG3D-style flat label: row-major cam-to-world (16) + normalised intrinsics (9).

        Unlike EG3D, the focal length here comes from the *vertical* fov (EG3D's "fov" is diagonal).
        """
        return torch.cat([self.c2w.reshape(len(self), 16), self.intrinsics_normalised().reshape(len(self), 9)], 1)

    def mvdream_condition(self) -> torch.Tensor:
        """(N, 16) MVDream's camera condition: the cam-to-world matrix moved onto the unit sphere."""
        c2w = self.c2w.clone()
        c2w[:, :3, 3] = c2w[:, :3, 3] / c2w[:, :3, 3].norm(dim=-1, keepdim=True)
        return c2w.reshape(len(self), 16)


def orbit_cameras(
    num_views: int,
    elevation_deg: float,
    azimuth_start_deg: float = 0.0,
    *,
    azimuth_step_deg: float | None = None,
    radius: float = DEFAULT_RADIUS,
    fovy_deg: float = DEFAULT_FOVY_DEG,
    resolution: int = 64,
    device: torch.device | str = "cpu",
) -> Cameras:
    """V cameras around the origin at one elevation, evenly spaced in azimuth (MVDream's layout at a radius), or
    `azimuth_step_deg` apart when it is given."""
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    if radius <= BOX_HALF * math.sqrt(3):
        raise ValueError(
            f"radius must put the camera outside the scene box (> {BOX_HALF * math.sqrt(3):.3f}), got {radius}"
        )
    # Exactly V azimuths (MVDream's float arange can yield V + 1 for some start angles).
    if azimuth_step_deg is None:
        azimuths = [azimuth_start_deg + 360.0 * i / num_views for i in range(num_views)]
    else:
        azimuths = [azimuth_start_deg + i * azimuth_step_deg for i in range(num_views)]
    mats = np.stack([_GL_TO_BLENDER @ _look_at_origin_gl(float(elevation_deg), a) for a in azimuths])
    mats = mats.astype(np.float32)
    mats[:, :3, 3] *= radius
    c2w = torch.from_numpy(mats).to(device)
    return Cameras(c2w, torch.full((num_views,), float(fovy_deg), device=device), resolution)


@dataclass(frozen=True)
class OrbitSampler:
    """Random MVDream-style orbits: one elevation and one azimuth start per sample, V views 360/V apart.

    Ranges are inclusive-exclusive ``(low, high)`` in degrees, drawn uniformly from an explicit generator.
    """

    num_views: int = 4
    elevation_range: tuple[float, float] = (0.0, 30.0)
    azimuth_start_range: tuple[float, float] = (0.0, 360.0)
    radius: float = DEFAULT_RADIUS
    fovy_deg: float = DEFAULT_FOVY_DEG
    resolution: int = 64

    def sample(self, rng: torch.Generator) -> tuple[Cameras, float, float]:
        """One orbit: (cameras of its V views, elevation, azimuth start)."""
        lo, hi = self.elevation_range
        elevation = lo + (hi - lo) * float(torch.rand((), generator=rng))
        lo, hi = self.azimuth_start_range
        azimuth = lo + (hi - lo) * float(torch.rand((), generator=rng))
        cams = orbit_cameras(
            self.num_views, elevation, azimuth, radius=self.radius, fovy_deg=self.fovy_deg, resolution=self.resolution
        )
        return cams, elevation, azimuth

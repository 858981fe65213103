"""Images of a generation rendered by the student itself: view grids, turntables, interpolation strips.

The views are the generator's own renders (`TriplaneGenerator.render`) at orbit cameras of the teacher's
camera distribution stored in the checkpoint (radius, fovy, mid elevation), so a preview shows exactly
what the student was trained to produce, independent of meshing.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch

from pipeline.atomic import atomic_write_bytes
from pipeline.cameras import Cameras, orbit_cameras


def preview_cameras(generator, num_views: int, azimuth_start_deg: float = 0.0) -> Cameras:
    """``num_views`` cameras evenly around the object at the middle of the training elevation range."""
    cam = generator.config.camera
    elevation = 0.5 * (cam.elevation_range[0] + cam.elevation_range[1])
    return orbit_cameras(num_views, elevation, azimuth_start_deg, radius=cam.radius, fovy_deg=cam.fovy_deg)


def render_views(generator, planes: torch.Tensor, cameras: Cameras, views_per_call: int = 8) -> np.ndarray:
    """planes (1, 3, C, R, R) -> (V, H, W, 3) uint8, rendered a few views at a time to bound memory."""
    assert planes.ndim == 5 and planes.shape[0] == 1, f"planes must be (1, 3, C, R, R), got {tuple(planes.shape)}"
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(cameras), views_per_call):
            c2w = cameras.c2w[start : start + views_per_call][None].to(planes.device)  # (1, v, 4, 4)
            fovy = cameras.fovy_deg[start : start + views_per_call][None].to(planes.device)  # (1, v)
            images = generator.render(planes, c2w, fovy)  # (1, v, 3, H, W) in [0, 1]
            chunks.append(images[0].permute(0, 2, 3, 1).float().cpu())  # (v, H, W, 3); fp32 under autocast too
    rgb = torch.cat(chunks).clamp(0, 1).numpy()
    return np.rint(rgb * 255).astype(np.uint8)


def image_grid(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 -> one (rows * H, columns * W, 3) image, white where the grid is not full."""
    n, h, w, _ = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    canvas = np.full((rows * columns, h, w, 3), 255, dtype=np.uint8)
    canvas[:n] = images
    # (rows, columns, H, W, 3) -> (rows, H, columns, W, 3) -> (rows * H, columns * W, 3)
    return canvas.reshape(rows, columns, h, w, 3).transpose(0, 2, 1, 3, 4).reshape(rows * h, columns * w, 3)


def save_image(image: np.ndarray, path: str | Path) -> Path:
    """(H, W, 3) uint8 -> PNG or JPEG by suffix, atomically; returns the path written."""
    from PIL import Image

    path = Path(path)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return atomic_write_bytes(path, buffer.getvalue())


def save_gif(frames: np.ndarray, path: str | Path, fps: float = 12.0) -> Path:
    """(F, H, W, 3) uint8 -> a looping GIF, atomically; returns the path written."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return atomic_write_bytes(path, buffer.getvalue())

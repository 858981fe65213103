"""Images of a generation rendered by the student itself: view grids, turntables, interpolation strips.

The views are the generator's own renders (`TriplaneGenerator.render_uint8`) at orbit cameras of the teacher's
camera distribution stored in the checkpoint (`CameraDefaults.middle_orbit`), so a preview shows exactly what
the student was trained to produce, independent of meshing.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.atomic import atomic_write_bytes

if TYPE_CHECKING:
    import PIL.Image


def image_grid(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 -> one (rows * H, columns * W, 3) image, white where the grid is not full."""
    n, h, w, _ = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    canvas = np.full((rows * columns, h, w, 3), 255, dtype=np.uint8)
    canvas[:n] = images
    # (rows, columns, H, W, 3) -> (rows, H, columns, W, 3) -> (rows * H, columns * W, 3)
    return canvas.reshape(rows, columns, h, w, 3).transpose(0, 2, 1, 3, 4).reshape(rows * h, columns * w, 3)


def save_image(image: np.ndarray | PIL.Image.Image, path: str | Path) -> Path:
    """(H, W, 3) uint8 (or a PIL image) -> PNG or JPEG by suffix, atomically; returns the path written."""
    from PIL import Image

    path = Path(path)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    image = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return atomic_write_bytes(path, buffer.getvalue())


def save_gif(frames: np.ndarray | Sequence[PIL.Image.Image], path: str | Path, fps: float = 12.0) -> Path:
    """(F, H, W, 3) uint8 (or a sequence of PIL images) -> a looping GIF, atomically; returns the path written."""
    from PIL import Image

    images = [f if isinstance(f, Image.Image) else Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return atomic_write_bytes(path, buffer.getvalue())

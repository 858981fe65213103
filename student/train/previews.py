"""Preview grids: fixed prompts and latents rendered around an orbit, one PNG per `preview_every` steps.

Rows are (prompt, seed) pairs in the order of `previews/prompts.txt`, columns the orbit's views. The same
latents and cameras every time, so a sequence of grids shows the model changing, not the sampling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.atomic import atomic_path, atomic_write_text
from student.config import CameraDefaults
from student.model.generator import TriplaneGenerator

PREVIEW_SEED = 7


@torch.no_grad()
def render_preview(
    G: TriplaneGenerator, emb: torch.Tensor, seeds: int, camera: CameraDefaults, azimuth_start_deg: float = 30.0
) -> np.ndarray:
    """emb (P, D) -> grid (P * seeds * H, V * W, 3) uint8."""
    p = emb.shape[0]
    z = G.sample_z(p * seeds, torch.Generator(device=G.device).manual_seed(PREVIEW_SEED))
    planes = G.planes(emb.to(G.device).repeat_interleave(seeds, dim=0), z)
    cams = camera.middle_orbit(camera.num_views, azimuth_start_deg)
    views = G.render_uint8(planes, cams.c2w, cams.fovy_deg)  # (N, V, H, W, 3)
    n, v, h, w, _ = views.shape
    return views.permute(0, 2, 1, 3, 4).reshape(n * h, v * w, 3).numpy()  # (N, H, V, W, 3) -> (N*H, V*W, 3)


def save_preview(path: Path, grid: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return path


def write_preview_index(path: Path, prompts: list[str], seeds: int) -> Path:
    """The prompt and seed of each grid row, one a line (`RunDir.preview_index`)."""
    rows = [f"{prompt}\tseed {s}" for prompt in prompts for s in range(seeds)]
    return atomic_write_text(path, "\n".join(rows) + "\n")

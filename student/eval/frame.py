"""Frame artifacts: is the outer border of the student's renders as white as the teacher's?

The procedural teacher frames every shape inside the image, so its border is pure background. A student whose
tri-plane or super-resolution leaks colour to the image edge shows thin coloured lines along the frame. The
deviation of a pixel from the white background is its largest channel distance from 255, in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch

BORDER_PX = 2  # the outer ring checked, in pixels


def border_deviation(views: np.ndarray | torch.Tensor, border: int = BORDER_PX) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (N,) deviation from white of every pixel in the outer `border` ring of every image."""
    x = torch.as_tensor(views)
    h, w = x.shape[-3:-1]
    if x.ndim < 3 or x.shape[-1] != 3 or min(h, w) <= 2 * border or border < 1:
        raise ValueError(f"need (..., H, W, 3) images larger than twice the border {border}, got {tuple(x.shape)}")
    ring = torch.ones(h, w, dtype=torch.bool)
    ring[border : h - border, border : w - border] = False
    deviation = (255 - x.int()).amax(dim=-1).float() / 255.0  # (..., H, W)
    return deviation[..., ring].flatten()


def frame_stats(views: np.ndarray | torch.Tensor, border: int = BORDER_PX, visible: float = 0.05) -> dict[str, float]:
    """Mean and max border deviation from white, and the fraction of border pixels visibly off white."""
    d = border_deviation(views, border)
    return {"mean": float(d.mean()), "max": float(d.max()), "visible_fraction": float((d > visible).float().mean())}


def compare_frames(student: dict[str, np.ndarray], teacher: np.ndarray, border: int = BORDER_PX) -> dict:
    """Border stats of each generator's renders and the teacher's, and each generator's excess mean over it."""
    t = frame_stats(teacher, border)
    out: dict = {"border_px": border, "visible_threshold": 0.05, "teacher": t, "generators": {}}
    for name, views in student.items():
        s = frame_stats(views, border)
        out["generators"][name] = {**s, "excess_mean": s["mean"] - t["mean"]}
    return out

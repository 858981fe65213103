"""An attribute oracle: which colour and which shape do multi-view images show?

It judges student renders on the procedural vocabulary (docs/measuring.md §Quality oracle), where ground truth exists.

- Colour: the median chromaticity (RGB divided by its largest channel) of the foreground pixels,
  matched to the nearest palette entry. The teacher's lighting multiplies the albedo by one scalar
  per pixel (ambient + diffuse, times the seed's shade), which chromaticity cancels, so the palette
  calibrated on the shading is simply the chromaticity of each albedo; the median ignores the
  anti-aliased rim, whose pixels are blended with the white background.
- Shape: the silhouette IoU against ground-truth silhouettes of every shape rendered at the
  images' own cameras (closed-form ray tests, `silhouette.py`). For each candidate shape and yaw (a
  grid over the shape's symmetry period) the scale is fitted first, from the silhouette area at a coarse resolution, then the IoU is taken
  over all views at the working resolution; the best yaw stands for the shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.cameras import Cameras
from pipeline.procedural.scene import yaw_matrix
from pipeline.procedural.shapes import SHAPE_GEOMETRY
from pipeline.procedural.silhouette import silhouette_hits
from pipeline.procedural.vocabulary import COLOURS, SHAPES

UNKNOWN = "unknown"  # predicted for both attributes when an image set shows no foreground at all


@dataclass(frozen=True)
class OracleConfig:
    work_resolution: int = 32  # silhouettes are compared at this size
    area_resolution: int = 16  # coarse pass that fits each candidate's scale
    yaw_steps: int = 9  # candidate yaws per symmetry period (90 deg for cube, pyramid: 10 deg apart)
    foreground_threshold: float = 0.2  # a pixel is foreground when 1 - its darkest channel exceeds this
    scale_range: tuple[float, float] = (0.3, 1.6)  # fitted scales are clamped to this
    chunk: int = 16  # samples processed together (bounds memory)


@dataclass(frozen=True)
class OracleScores:
    """Accuracies in [0, 1] over `count` samples: colour right, shape right, both right."""

    colour: float
    shape: float
    both: float
    count: int


@dataclass(frozen=True)
class PoseFit:
    """Per-sample pose of a known shape fitted from silhouettes; yaw lies in [0, the shape's yaw period)."""

    yaw_deg: torch.Tensor  # (B,) 0 for shapes symmetric under every yaw
    scale: torch.Tensor  # (B,) relative to the canonical shape, within OracleConfig.scale_range
    iou: torch.Tensor  # (B,) silhouette IoU of the fit


def _checked(views, c2w, fovy) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    views, c2w, fovy = _as_tensor(views), _as_tensor(c2w).float(), _as_tensor(fovy).float()
    b, v = views.shape[:2]
    if views.ndim != 5 or views.shape[-1] != 3 or c2w.shape != (b, v, 4, 4) or fovy.shape != (b, v):
        raise ValueError(
            f"expected views (B, V, H, W, 3), c2w (B, V, 4, 4), fovy (B, V); got {tuple(views.shape)}, "
            f"{tuple(c2w.shape)}, {tuple(fovy.shape)}"
        )
    return views, c2w, fovy


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


class AttributeOracle:
    """Colour and shape classifier for (B, V, H, W, 3) uint8 views on a white background."""

    def __init__(self, config: OracleConfig = OracleConfig()):
        self.config = config
        self.colour_names = list(COLOURS)
        albedo = torch.tensor([COLOURS[c] for c in self.colour_names], dtype=torch.float32)  # (C, 3)
        self.palette = albedo / albedo.max(dim=1, keepdim=True).values  # (C, 3) chromaticity

    def foreground(self, views: torch.Tensor) -> torch.Tensor:
        """(..., H, W, 3) uint8 -> (..., H, W) bool: pixels visibly darker than the white background."""
        darkest = views.min(dim=-1).values.float() / 255.0
        return (1.0 - darkest) > self.config.foreground_threshold

    def colour_features(self, views: torch.Tensor) -> torch.Tensor:
        """(B, V, H, W, 3) uint8 -> (B, 3) median foreground chromaticity (NaN where no foreground)."""
        rgb = views.float() / 255.0
        chroma = rgb / rgb.max(dim=-1, keepdim=True).values.clamp_min(1e-3)  # (B, V, H, W, 3)
        chroma = torch.where(self.foreground(views).unsqueeze(-1), chroma, torch.nan)
        return chroma.reshape(views.shape[0], -1, 3).nanmedian(dim=1).values

    def predict_colours(self, views: np.ndarray | torch.Tensor) -> list[str]:
        features = self.colour_features(_as_tensor(views))  # (B, 3)
        nearest = torch.cdist(features.nan_to_num(0.0), self.palette).argmin(dim=1)
        empty = features.isnan().any(dim=1)
        return [UNKNOWN if e else self.colour_names[i] for i, e in zip(nearest.tolist(), empty.tolist(), strict=True)]

    def shape_ious(
        self, views: np.ndarray | torch.Tensor, c2w: np.ndarray | torch.Tensor, fovy: np.ndarray | torch.Tensor
    ) -> torch.Tensor:
        """(B, S) best silhouette IoU of each shape in `SHAPES` order, over yaws, with fitted scale."""
        views, c2w, fovy = _checked(views, c2w, fovy)
        b = views.shape[0]
        mask, observed = self._masks(views)
        area = mask.mean(dim=(1, 2, 3))  # (B,) image fraction over all views
        out = torch.zeros(b, len(SHAPES))
        for start in range(0, b, self.config.chunk):
            sl = slice(start, start + self.config.chunk)
            cams = Cameras(c2w[sl].flatten(0, 1), fovy[sl].flatten(0, 1), self.config.area_resolution)
            for s, shape in enumerate(SHAPES):
                out[sl, s] = self._best_iou(shape, cams, area[sl], observed[sl])
        return out

    def _masks(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, V, H, W, 3) uint8 -> foreground (B, V, H, W) float and its majority at the work size (B, V, R, R) bool."""
        b, v = views.shape[:2]
        mask = self.foreground(views).float()
        work = F.interpolate(mask.flatten(0, 1).unsqueeze(1), size=self.config.work_resolution, mode="area")
        return mask, work.reshape(b, v, *work.shape[-2:]) > 0.5

    def fit_pose(
        self,
        views: np.ndarray | torch.Tensor,
        c2w: np.ndarray | torch.Tensor,
        fovy: np.ndarray | torch.Tensor,
        shape: str,
        yaw_steps: int = 18,
    ) -> PoseFit:
        """Yaw and scale of `shape` that best explain each sample's silhouettes (the same fit `shape_ious` makes).

        Unlike classification, the area behind the scale is that of the work-size majority mask, so isolated
        noisy pixels (a generator that adds noise) do not move the fit. Shapes symmetric under every yaw report 0.
        """
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
        if yaw_steps < 1:
            raise ValueError(f"yaw_steps must be >= 1, got {yaw_steps}")
        views, c2w, fovy = _checked(views, c2w, fovy)
        _, observed = self._masks(views)
        area = observed.float().mean(dim=(1, 2, 3))  # (B,)
        yaw, scale, iou = [], [], []
        for start in range(0, views.shape[0], self.config.chunk):
            sl = slice(start, start + self.config.chunk)
            cams = Cameras(c2w[sl].flatten(0, 1), fovy[sl].flatten(0, 1), self.config.area_resolution)
            ious, scales, yaws = self._fit(shape, cams, area[sl], observed[sl], yaw_steps)  # (b, K), (b, K), (K,)
            best = ious.argmax(dim=1)  # (b,)
            yaw.append(yaws[best])
            scale.append(scales.gather(1, best[:, None])[:, 0])
            iou.append(ious.gather(1, best[:, None])[:, 0])
        return PoseFit(torch.cat(yaw), torch.cat(scale), torch.cat(iou))

    def brightness(self, views: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, V, H, W, 3) uint8 -> (B,) median brightest channel of the foreground in [0, 1] (NaN if none).

        The teacher's shade multiplies the albedo, so this moves with it, whatever the colour.
        """
        views = _as_tensor(views)
        top = views.max(dim=-1).values.float() / 255.0  # (B, V, H, W)
        top = torch.where(self.foreground(views), top, torch.nan)
        return top.reshape(views.shape[0], -1).nanmedian(dim=1).values

    def _best_iou(self, shape: str, cams: Cameras, area: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """(b,) best IoU over the yaw grid of one shape for a chunk of b samples."""
        iou, _, _ = self._fit(shape, cams, area, observed, self.config.yaw_steps)
        return iou.max(dim=1).values

    def _fit(
        self, shape: str, cams: Cameras, area: torch.Tensor, observed: torch.Tensor, yaw_steps: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """IoU (b, K) and fitted scale (b, K) of one shape at each of K grid yaws (K,) for a chunk of b samples."""
        b, v = observed.shape[:2]
        period = SHAPE_GEOMETRY[shape].yaw_period_deg
        steps = yaw_steps if period > 0 else 1
        yaws = torch.arange(steps, dtype=torch.float32) * (period / steps)  # (K,)
        unit = self._silhouettes(shape, cams, yaws, torch.ones(b, steps))  # (b, K, V, r, r)
        unit_area = unit.float().mean(dim=(2, 3, 4))  # (b, K)
        lo, hi = self.config.scale_range
        # Under (near-)orthographic viewing the silhouette area grows with the square of the scale.
        scale = (area.unsqueeze(1) / unit_area.clamp_min(1e-6)).sqrt().clamp(lo, hi)  # (b, K)
        fitted = self._silhouettes(shape, cams.with_resolution(self.config.work_resolution), yaws, scale)
        obs = observed.unsqueeze(1)  # (b, 1, V, R, R)
        inter = (fitted & obs).sum(dim=(2, 3, 4)).float()
        union = (fitted | obs).sum(dim=(2, 3, 4)).float().clamp_min(1)
        return inter / union, scale, yaws

    def _silhouettes(self, shape: str, cams: Cameras, yaws: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """(b, K, V, R, R) bool silhouettes of `shape` at yaws (K,) and scales (b, K) from cams (b*V)."""
        b, k = scale.shape
        r = cams.resolution
        origins, dirs = cams.rays()  # (b*V, R, R, 3)
        origins = origins.reshape(b, 1, -1, 3)  # (b, 1, V*R*R, 3)
        dirs = dirs.reshape(b, 1, -1, 3)
        rot = yaw_matrix(yaws).reshape(1, k, 3, 3)  # canonical -> world; row vectors map back with p @ R
        local_o = (origins @ rot) / scale.reshape(b, k, 1, 1)  # (b, K, V*R*R, 3)
        local_d = (dirs @ rot).expand(b, k, -1, 3)
        hit = silhouette_hits(shape, local_o.reshape(-1, 3), local_d.reshape(-1, 3))
        return hit.reshape(b, k, -1, r, r)

    def predict_shapes(
        self, views: np.ndarray | torch.Tensor, c2w: np.ndarray | torch.Tensor, fovy: np.ndarray | torch.Tensor
    ) -> list[str]:
        ious = self.shape_ious(views, c2w, fovy)
        empty = ~self.foreground(_as_tensor(views)).flatten(1).any(dim=1)
        best = ious.argmax(dim=1)
        return [UNKNOWN if e else SHAPES[i] for i, e in zip(best.tolist(), empty.tolist(), strict=True)]

    def predict(
        self, views: np.ndarray | torch.Tensor, c2w: np.ndarray | torch.Tensor, fovy: np.ndarray | torch.Tensor
    ) -> list[tuple[str, str]]:
        """[(colour, shape)] per sample; views (B, V, H, W, 3) uint8, c2w (B, V, 4, 4), fovy (B, V) degrees."""
        colours = self.predict_colours(views)
        shapes = self.predict_shapes(views, c2w, fovy)
        return list(zip(colours, shapes, strict=True))

    def score(
        self,
        views: np.ndarray | torch.Tensor,
        c2w: np.ndarray | torch.Tensor,
        fovy: np.ndarray | torch.Tensor,
        targets: Sequence[tuple[str, str]],
    ) -> OracleScores:
        """Per-attribute accuracies of the predictions against (colour, shape) targets."""
        predictions = self.predict(views, c2w, fovy)
        if len(targets) != len(predictions):
            raise ValueError(f"{len(targets)} targets for {len(predictions)} samples")
        colour = [p[0] == t[0] for p, t in zip(predictions, targets, strict=True)]
        shape = [p[1] == t[1] for p, t in zip(predictions, targets, strict=True)]
        n = len(predictions)
        both = sum(c and s for c, s in zip(colour, shape, strict=True))
        return OracleScores(colour=sum(colour) / n, shape=sum(shape) / n, both=both / n, count=n)

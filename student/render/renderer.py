"""The volume renderer: stratified samples, importance samples where the coarse pass found density, compositing.

EG3D (§4, renderer.py) evaluates a coarse and a fine set of samples (48 + 48) with the same tri-plane decoder
and composites the union; rays are clipped to the tri-plane box. The field is any function from points to
(density, features), so the renderer can be checked against analytic densities.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pipeline.cameras import BOX_HALF
from student.render.compositing import BACKGROUND, Composite, composite
from student.render.rays import ray_box_bounds
from student.render.sampling import importance_depths, stratified_depths

# points (B, P, 3) -> sigma (B, P) >= 0, features (B, P, C)
Field = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class VolumeRenderer:
    def __init__(self, num_stratified: int, num_importance: int, box_half: float = BOX_HALF) -> None:
        if num_stratified < 1 or num_importance < 0:
            raise ValueError(
                f"need num_stratified >= 1 and num_importance >= 0, got {num_stratified}, {num_importance}"
            )
        self.num_stratified, self.num_importance, self.box_half = num_stratified, num_importance, box_half

    def __call__(
        self,
        field: Field,
        origins: torch.Tensor,
        dirs: torch.Tensor,
        rng: torch.Generator | None = None,
        background: torch.Tensor | float = BACKGROUND,
    ) -> Composite:
        """origins, dirs (B, N, 3) -> Composite over N rays. rng: jitter samples (training); None: don't.
        background: float or tensor broadcasting to (B, N, C), what the rays end on."""
        assert origins.shape == dirs.shape and origins.shape[-1] == 3, f"{tuple(origins.shape)} vs {tuple(dirs.shape)}"
        near, far, _ = ray_box_bounds(origins, dirs, self.box_half)  # (B, N)
        depths = stratified_depths(near, far, self.num_stratified, rng)  # (B, N, Ns)
        sigma, feats = self._query(field, origins, dirs, depths)
        if self.num_importance > 0:
            with torch.no_grad():  # the coarse weights only place the fine samples
                coarse = composite(depths, sigma, feats, near, far)
            fine = importance_depths(coarse.boundaries, coarse.weights, self.num_importance, rng)
            sigma_f, feats_f = self._query(field, origins, dirs, fine)
            depths, order = torch.sort(torch.cat([depths, fine], dim=-1), dim=-1)  # (B, N, Ns + Ni)
            sigma = torch.cat([sigma, sigma_f], dim=-1).gather(-1, order)
            feats = torch.cat([feats, feats_f], dim=-2)
            feats = feats.gather(-2, order.unsqueeze(-1).expand(*order.shape, feats.shape[-1]))
        return composite(depths, sigma, feats, near, far, background)

    @staticmethod
    def _query(
        field: Field, origins: torch.Tensor, dirs: torch.Tensor, depths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluate the field at origin + depth * dir: depths (B, N, S) -> sigma (B, N, S), features (B, N, S, C)."""
        b, n, s = depths.shape
        points = origins.unsqueeze(2) + dirs.unsqueeze(2) * depths.unsqueeze(-1)  # (B, N, S, 3)
        sigma, feats = field(points.reshape(b, n * s, 3))  # (B, N*S), (B, N*S, C)
        assert sigma.shape == (b, n * s) and feats.shape[:2] == (b, n * s), (
            f"{tuple(sigma.shape)}, {tuple(feats.shape)}"
        )
        # Compositing sums and exponentiates along the ray: fp32 even when the field ran under autocast.
        return sigma.float().reshape(b, n, s), feats.float().reshape(b, n, s, -1)  # (B, N*S) -> (B, N, S)

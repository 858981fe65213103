"""The tri-plane decoder: mean of the three plane features -> FC -> softplus -> FC -> density + features.

With `aggregate="mean_product"` the FC also reads the per-channel product of the three planes' features.

EG3D's OSGDecoder (§4.1): one hidden layer of 64 units with softplus, view-independent; density through a
softplus, every feature through a 'widened' sigmoid so that colours 0 and 1 are reachable with finite logits.
The first three features are the raw RGB; the rest feed the super-resolution module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from student.config import DecoderConfig
from student.model.equalized import EqualizedLinear

RGB = 3  # the first RGB features are the colour channels


class TriplaneDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig, plane_channels: int, *, rng: torch.Generator | None = None) -> None:
        super().__init__()
        if cfg.feature_channels < RGB:
            raise ValueError(f"feature_channels must be >= {RGB} (the first three are RGB), got {cfg.feature_channels}")
        self.cfg, self.plane_channels = cfg, plane_channels
        inputs = plane_channels * (2 if cfg.aggregate == "mean_product" else 1)
        self.hidden = EqualizedLinear(inputs, cfg.hidden, rng=rng)
        self.out = EqualizedLinear(cfg.hidden, 1 + cfg.feature_channels, rng=rng)

    def forward(self, plane_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """plane_features (B, 3, P, C) -> sigma (B, P) >= 0, features (B, P, F) in (-e, 1 + e)."""
        b, n_planes, p, c = plane_features.shape
        assert n_planes == 3 and c == self.plane_channels, (
            f"expected (B, 3, P, {self.plane_channels}), got {(b, n_planes, p, c)}"
        )
        x = self.aggregate(plane_features)  # (B, P, C) or (B, P, 2C)
        x = self.out(F.softplus(self.hidden(x)))  # (B, P, 1 + F)
        sigma = self.cfg.density_scale * F.softplus(x[..., 0] + self.cfg.density_shift)
        e = self.cfg.colour_widen
        features = torch.sigmoid(x[..., 1:]) * (1 + 2 * e) - e
        return sigma, features

    def aggregate(self, plane_features: torch.Tensor) -> torch.Tensor:
        """(B, 3, P, C) -> the hidden layer's input: the planes' mean (B, P, C), as EG3D, or with "mean_product"
        the mean and the product (B, P, 2C)."""
        mean = plane_features.mean(dim=1)
        if self.cfg.aggregate == "mean":
            return mean
        xy, xz, yz = plane_features.unbind(dim=1)  # 3 x (B, P, C)
        # Two multiplies, not .prod(): prod's backward takes a slow path wherever a factor is 0 (outside the box).
        return torch.cat([mean, xy * xz * yz], dim=-1)

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


class ContiguousGrad(torch.autograd.Function):
    """The identity, whose backward makes the incoming gradient contiguous.

    Placed on the aggregated planes (B, C, P) before their transpose: the transposed gradient is copied once,
    at a third of the size of the per-plane gradient (B, 3, C, P) the aggregation's backward would otherwise
    produce in the transposed layout and grid_sample's backward copy again."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


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
        """plane_features (B, 3, P, C) -> sigma (B, P) >= 0, features (B, P, F) in (-e, 1 + e).

        The reference layout; the renderer's field runs `decode_planar`, the same values from (B, 3, C, P)."""
        b, n_planes, p, c = plane_features.shape
        assert n_planes == 3 and c == self.plane_channels, (
            f"expected (B, 3, P, {self.plane_channels}), got {(b, n_planes, p, c)}"
        )
        return self.head(self.aggregate(plane_features))  # (B, P, C) or (B, P, 2C)

    def decode_planar(self, planar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """planar (B, 3, C, P), `sample_triplane_planar`'s layout -> `forward` of its (B, 3, P, C) transpose.

        The planes are combined where each plane's values are contiguous and only the combined (B, C, P) is
        transposed: the same sums and products in the same order as `forward`, without its strided reduction
        over the plane axis, and grid_sample's backward receives a contiguous gradient."""
        b, n_planes, c, p = planar.shape
        assert n_planes == 3 and c == self.plane_channels, (
            f"expected (B, 3, {self.plane_channels}, P), got {(b, n_planes, c, p)}"
        )
        x = ContiguousGrad.apply(self.aggregate_planar(planar))  # (B, C, P) or (B, 2C, P)
        return self.head(x.transpose(1, 2))  # (B, P, C) or (B, P, 2C), a view

    def head(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The aggregated features (B, P, C) or (B, P, 2C) -> sigma (B, P), features (B, P, F)."""
        x = self.out(F.softplus(self.hidden(x)))  # (B, P, 1 + F)
        # split rather than two slices: its backward concatenates the two gradients instead of zero-filling two
        # (B, P, 1 + F) buffers and adding them (the same values).
        density, colour = x.split([1, self.cfg.feature_channels], dim=-1)  # (B, P, 1), (B, P, F)
        sigma = self.cfg.density_scale * F.softplus(density.squeeze(-1) + self.cfg.density_shift)
        e = self.cfg.colour_widen
        features = torch.sigmoid(colour) * (1 + 2 * e) - e
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

    def aggregate_planar(self, planar: torch.Tensor) -> torch.Tensor:
        """(B, 3, C, P) -> `aggregate` of its (B, 3, P, C) transpose, transposed: (B, C, P) or (B, 2C, P)."""
        mean = planar.mean(dim=1)
        if self.cfg.aggregate == "mean":
            return mean
        xy, xz, yz = planar.unbind(dim=1)  # 3 x (B, C, P)
        return torch.cat([mean, xy * xz * yz], dim=1)

"""Alpha compositing of samples along rays onto a background, white by default (NeRF's quadrature, Max 1995).

Each sample stands for the interval between the midpoints to its neighbours, the first reaching back to the
ray's entry into the box and the last forward to its exit, so the intervals tile [near, far] exactly: a
constant density sigma over the whole segment composites to opacity 1 - exp(-sigma (far - near)) whatever the
sample count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

BACKGROUND = 1.0  # white, like the procedural teacher's views; the default of every feature channel


@dataclass(frozen=True)
class Composite:
    features: torch.Tensor  # (B, N, C) composited onto the background
    weights: torch.Tensor  # (B, N, S) contribution of each sample
    boundaries: torch.Tensor  # (B, N, S+1) interval edges of the samples
    opacity: torch.Tensor  # (B, N) 1 - final transmittance
    depth: torch.Tensor  # (B, N) expected depth of the opaque part (far where nothing is hit)


def sample_intervals(depths: torch.Tensor, near: torch.Tensor, far: torch.Tensor) -> torch.Tensor:
    """depths (B, N, S) sorted in [near, far] -> interval boundaries (B, N, S+1) tiling [near, far]."""
    mid = 0.5 * (depths[..., 1:] + depths[..., :-1])  # (B, N, S-1)
    return torch.cat([near.unsqueeze(-1), mid, far.unsqueeze(-1)], dim=-1)


def composite(
    depths: torch.Tensor,
    sigma: torch.Tensor,
    features: torch.Tensor,
    near: torch.Tensor,
    far: torch.Tensor,
    background: torch.Tensor | float = BACKGROUND,
) -> Composite:
    """depths, sigma (B, N, S) with sigma >= 0, features (B, N, S, C), near/far (B, N) -> Composite.

    background: what the rays end on, a float or a tensor broadcasting to (B, N, C)."""
    assert depths.shape == sigma.shape == features.shape[:-1], (
        f"depths {tuple(depths.shape)}, sigma {tuple(sigma.shape)}, features {tuple(features.shape)}"
    )
    boundaries = sample_intervals(depths, near, far)
    optical = sigma * (boundaries[..., 1:] - boundaries[..., :-1])  # (B, N, S) sigma * delta
    alpha = 1 - torch.exp(-optical)
    # Transmittance before each sample, exp(-exclusive cumsum): steadier than a cumprod of (1 - alpha).
    accumulated = torch.cumsum(optical, dim=-1)
    transmittance = torch.exp(-torch.cat([torch.zeros_like(accumulated[..., :1]), accumulated[..., :-1]], -1))
    weights = alpha * transmittance  # (B, N, S)
    opacity = weights.sum(dim=-1)
    final_t = 1 - opacity
    feats = (weights.unsqueeze(-1) * features).sum(dim=-2) + final_t.unsqueeze(-1) * background  # (B, N, C)
    depth = (weights * depths).sum(dim=-1) + final_t * far
    return Composite(feats, weights, boundaries, opacity, depth)

"""The UNet's convolutional pieces: residual block with the time+camera embedding, down/up sampling.

Module and parameter names follow MVDream's (ldm's) state dict, e.g. ``in_layers.2.weight``,
``emb_layers.1.weight``, ``out_layers.3.weight``, ``skip_connection``, ``op``, ``conv``
(docs/mvdream.md §UNet, key list in ``tests/golden/layout/unet_keys.tsv``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from teacher_dump.mvdream.config import NORM_GROUPS


class GroupNorm32(nn.GroupNorm):
    """GroupNorm(32, C, eps 1e-5) computed in float32 whatever the input dtype.

    MVDream's original code does this (docs/mvdream.md §UNet): the statistics of a half-precision
    activation map lose digits, so under fp16/bf16 this keeps the reference's numerics.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(NORM_GROUPS, channels, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps).to(x.dtype)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with the embedding added in between, plus a skip connection.

    The embedding (time + camera, docs/mvdream.md §UNet) is projected to the output width and added as a
    per-channel constant after ``in_layers`` (``use_scale_shift_norm=False``).
    """

    def __init__(self, channels: int, emb_dim: int, out_channels: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_channels))
        # Slot 2 is the reference's Dropout (p = 0 at inference); kept so the conv is `out_layers.3`.
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels), nn.SiLU(), nn.Identity(), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.skip_connection = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        # x: (N, C, H, W), emb: (N, E) -> (N, C_out, H, W)
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Downsample(nn.Module):
    """Stride-2 3x3 convolution (``op``): (N, C, H, W) -> (N, C, H/2, W/2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 convolution (``conv``): (N, C, H, W) -> (N, C, 2H, 2W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))

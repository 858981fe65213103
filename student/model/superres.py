"""Super-resolution: StyleGAN2 synthesis blocks from the rendered feature image to the output resolution.

EG3D (§4.2, superresolution.py) upsamples the 64^2 feature image with two StyleGAN2 blocks whose ToRGB
outputs are added to the upsampled raw RGB. Two deliberate differences:
- EG3D's 2X/4X modules add the skip image in place, overwriting the raw image that the dual discriminator
  is also given; here every addition builds a new tensor.
- EG3D modulates these blocks by w. Here they are modulated by a code pooled from the tri-planes, so an image
  depends on the 3D asset (the planes) alone and `render(planes, cameras)` needs nothing else.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from student.config import SuperResConfig
from student.model.decoder import RGB
from student.model.equalized import normalize_2nd_moment
from student.model.synthesis import SynthesisBlock


def plane_code(planes: torch.Tensor) -> torch.Tensor:
    """planes (B, 3, C, R, R) -> a global per-asset code (B, 3C) of unit second moment."""
    b, n, c = planes.shape[:3]
    return normalize_2nd_moment(planes.mean(dim=(-2, -1)).reshape(b, n * c))  # (B, 3, C) -> (B, 3C)


class SuperResolution(nn.Module):
    def __init__(
        self,
        cfg: SuperResConfig,
        in_resolution: int,
        feature_channels: int,
        code_dim: int,
        *,
        rng: torch.Generator,
    ) -> None:
        super().__init__()
        factor = cfg.output_resolution // in_resolution
        if factor < 1 or factor * in_resolution != cfg.output_resolution or factor & (factor - 1):
            raise ValueError(
                f"superres.output_resolution ({cfg.output_resolution}) must be render.resolution ({in_resolution}) "
                "times a power of two"
            )
        self.factor, self.feature_channels, self.code_dim = factor, feature_channels, code_dim
        self.edge_pad = cfg.edge_pad
        blocks, in_ch, res = [], feature_channels, in_resolution
        for _ in range(int(math.log2(factor))):
            res *= 2
            out_ch = min(cfg.channel_base // res, cfg.channel_max)
            blocks.append(SynthesisBlock(in_ch, out_ch, RGB, code_dim, first=False, rng=rng))
            in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)

    def forward(self, features: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """features (N, F, h, w) with RGB first, code (N, code_dim) -> image (N, 3, h * factor, w * factor)."""
        n, f, h, w = features.shape
        assert f == self.feature_channels and code.shape == (n, self.code_dim), (
            f"{tuple(features.shape)}, {tuple(code.shape)}"
        )
        p = self.edge_pad
        x = F.pad(features, (p, p, p, p), mode="replicate") if p else features  # (N, F, h + 2p, w + 2p)
        img = x[:, :RGB]
        for block in self.blocks:
            x, img = block(x, img, code)  # img = torgb(x) + upsample(img): a new tensor each block
        if p:
            q = p * self.factor
            img = img[..., q:-q, q:-q]  # (N, 3, H, W): the padded margin, where zero padding acts, is cut off
        return img

"""Tri-plane synthesis: a StyleGAN2 'skip' generator whose 3C output channels are three C-channel planes.

EG3D (Chan et al. 2022, §4.1) uses an unmodified StyleGAN2 backbone emitting 96 = 3 x 32 channels at 256^2 and
reshapes them into three orthogonal feature planes. Per-pixel noise inputs are left out: in a tri-plane they
would become 3D texture noise not controlled by z (EG3D renders with noise_mode='const' at inference).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from student.config import SynthesisConfig
from student.model.modulated_conv import ModulatedConv, ToRGB

NUM_PLANES = 3  # XY, XZ, YZ (student/render/triplane.py)


class SynthesisBlock(nn.Module):
    """One resolution: (upsample +) two modulated convs and a ToRGB added to the upsampled skip image."""

    def __init__(self, in_ch: int, out_ch: int, img_ch: int, w_dim: int, *, first: bool, rng: torch.Generator):
        super().__init__()
        self.first = first
        self.conv0 = None if first else ModulatedConv(in_ch, out_ch, w_dim, up=True, rng=rng)
        self.conv1 = ModulatedConv(out_ch if not first else in_ch, out_ch, w_dim, rng=rng)
        self.torgb = ToRGB(out_ch, img_ch, w_dim, rng=rng)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.conv0 is not None:
            x = self.conv0(x, w)
        x = self.conv1(x, w)
        y = self.torgb(x, w)
        if img is not None:
            # StyleGAN2's skip architecture: the output is the sum of every resolution's ToRGB, upsampled.
            y = y + F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
        return x, y


class TriplaneSynthesis(nn.Module):
    def __init__(self, cfg: SynthesisConfig, w_dim: int, *, rng: torch.Generator) -> None:
        super().__init__()
        log2 = int(math.log2(cfg.plane_resolution))
        if cfg.plane_resolution < 4 or 2**log2 != cfg.plane_resolution:
            raise ValueError(f"plane_resolution must be a power of two >= 4, got {cfg.plane_resolution}")
        self.cfg, self.w_dim = cfg, w_dim

        def channels(res: int) -> int:
            return min(cfg.channel_base // res, cfg.channel_max)

        img_ch = NUM_PLANES * cfg.plane_channels
        self.const = nn.Parameter(torch.randn(channels(4), 4, 4, generator=rng))
        blocks = [SynthesisBlock(channels(4), channels(4), img_ch, w_dim, first=True, rng=rng)]
        for k in range(3, log2 + 1):
            blocks.append(SynthesisBlock(channels(2 ** (k - 1)), channels(2**k), img_ch, w_dim, first=False, rng=rng))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """w (B, w_dim), broadcast to every layer -> planes (B, 3, C, R, R) in the order XY, XZ, YZ."""
        b = w.shape[0]
        assert w.shape == (b, self.w_dim), f"w must be (B, {self.w_dim}), got {tuple(w.shape)}"
        x = self.const.unsqueeze(0).expand(b, -1, -1, -1)  # (B, C4, 4, 4)
        img = None
        for block in self.blocks:
            x, img = block(x, img, w)
        r, c = self.cfg.plane_resolution, self.cfg.plane_channels
        return img.view(b, NUM_PLANES, c, r, r)  # (B, 3C, R, R) -> (B, 3, C, R, R)

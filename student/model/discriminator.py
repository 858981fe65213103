"""The discriminator: a StyleGAN2 residual network on the dual image, with a text and camera projection head.

- Dual input (EG3D §4.3): the final image concatenated with the raw neural rendering upsampled to the same
  size, so D also judges the raw image and keeps the super-resolved output consistent with it. Real images get
  a raw counterpart by filtered downsampling to the rendering resolution.
- Conditioning (StyleGAN2-ADA's projection discriminator, training/networks.py DiscriminatorEpilogue): the
  image features are dotted with an embedding `cmap` of the condition. The condition is the text embedding
  and, as in EG3D, the 25-float camera label; the split `features` / `condition` / `score` lets mismatched
  (image, text) negatives reuse one pass of the image network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.cameras import Cameras
from student.config import DiscriminatorConfig
from student.model.equalized import EqualizedConv2d, EqualizedLinear, lrelu, normalize_2nd_moment
from student.model.mapping import CAMERA_LABEL_DIM

IMAGE_CHANNELS = 6  # final RGB + upsampled raw RGB
RAY_CHANNELS = 3  # world direction of each pixel's ray, with `ray_input`


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize with antialiasing. For 2x downsampling its taps are [1, 3, 3, 1] / 8: StyleGAN2's filter."""
    if image.shape[-1] == size:
        return image
    # Antialiased resampling has no bf16/fp16 CPU kernel: filter in fp32 and return the input's dtype.
    out = F.interpolate(image.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.to(image.dtype)


def ray_directions(label: torch.Tensor, resolution: int) -> torch.Tensor:
    """EG3D-style camera labels (N, 25) -> unit world ray directions through the pixel centres (N, 3, R, R)."""
    n = label.shape[0]
    c2w = label[:, :16].reshape(n, 4, 4)
    focal = label[:, 16]  # normalised focal length 0.5 / tan(fovy / 2) (Cameras.intrinsics_normalised)
    fovy_deg = torch.rad2deg(2 * torch.atan(0.5 / focal))
    _, dirs = Cameras(c2w, fovy_deg, resolution).rays()  # (N, R, R, 3)
    return dirs.permute(0, 3, 1, 2)


def dual_image(image: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
    """image (N, 3, H, W), raw (N, 3, h, w) -> (N, 6, H, W)."""
    return torch.cat([image, resize(raw, image.shape[-1])], dim=1)


class DiscriminatorBlock(nn.Module):
    """StyleGAN2's residual D block: two 3x3 convs with a filtered 2x downsample, plus a 1x1 downsampled skip."""

    def __init__(self, in_ch: int, out_ch: int, *, rng: torch.Generator) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_ch, in_ch, 3, rng=rng)
        self.conv1 = EqualizedConv2d(in_ch, out_ch, 3, rng=rng)
        self.skip = EqualizedConv2d(in_ch, out_ch, 1, bias=False, rng=rng)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        y = resize(lrelu(self.conv0(x)), half)
        y = lrelu(self.conv1(y))
        return (self.skip(resize(x, half)) + y) / math.sqrt(2)  # StyleGAN2: unit-variance residual sum


class Discriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig, resolution: int, text_dim: int, *, rng: torch.Generator) -> None:
        super().__init__()
        log2 = int(math.log2(resolution))
        if resolution < 8 or 2**log2 != resolution:
            raise ValueError(f"discriminator resolution must be a power of two >= 8, got {resolution}")
        self.cfg, self.resolution, self.text_dim = cfg, resolution, text_dim

        def channels(res: int) -> int:
            return min(cfg.channel_base // res, cfg.channel_max)

        in_channels = IMAGE_CHANNELS + (RAY_CHANNELS if cfg.ray_input else 0)
        self.from_rgb = EqualizedConv2d(in_channels, channels(resolution), 1, rng=rng)
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(channels(2**k), channels(2 ** (k - 1)), rng=rng) for k in range(log2, 2, -1)
        )
        ch4 = channels(4)
        self.epilogue_conv = EqualizedConv2d(ch4 + 1, ch4, 3, rng=rng)  # +1: minibatch stddev
        self.epilogue_fc = EqualizedLinear(ch4 * 16, ch4, rng=rng)
        self.epilogue_out = EqualizedLinear(ch4, cfg.cmap_dim, rng=rng)

        self.text_embed = EqualizedLinear(text_dim, cfg.cmap_dim, rng=rng)
        self.camera_embed = EqualizedLinear(CAMERA_LABEL_DIM, cfg.cmap_dim, rng=rng) if cfg.camera_cond else None
        width = cfg.cmap_dim * (2 if cfg.camera_cond else 1)
        layers = []
        for _ in range(cfg.mapping_layers):
            # StyleGAN2-ADA's D mapping keeps the default mapping lr multiplier of 0.01.
            layers.append(EqualizedLinear(width, cfg.cmap_dim, lr_multiplier=cfg.mapping_lr_multiplier, rng=rng))
            width = cfg.cmap_dim
        self.mapping = nn.ModuleList(layers)

    def features(self, image: torch.Tensor, raw: torch.Tensor, camera: torch.Tensor | None = None) -> torch.Tensor:
        """image (N, 3, H, W) in [0, 1], raw (N, 3, h, w), camera (N, 25) iff ray_input -> features (N, cmap_dim)."""
        n = image.shape[0]
        assert image.shape == (n, 3, self.resolution, self.resolution), f"image {tuple(image.shape)}"
        assert raw.shape[:2] == (n, 3), f"raw {tuple(raw.shape)}"
        x = dual_image(image, raw) * 2 - 1  # (N, 6, H, W) in StyleGAN's [-1, 1] range
        if self.cfg.ray_input:
            assert camera is not None and camera.shape == (n, CAMERA_LABEL_DIM), "camera label (N, 25) required"
            x = torch.cat([x, ray_directions(camera.float(), self.resolution).to(x.dtype)], dim=1)  # (N, 9, H, W)
        x = lrelu(self.from_rgb(x))
        for block in self.blocks:
            x = block(x)
        x = torch.cat([x, self._minibatch_std(x)], dim=1)  # (N, C4 + 1, 4, 4)
        x = lrelu(self.epilogue_conv(x))
        x = lrelu(self.epilogue_fc(x.flatten(1)))  # (N, C4 * 16) -> (N, C4)
        return self.epilogue_out(x)

    def condition(self, text_emb: torch.Tensor, camera: torch.Tensor | None) -> torch.Tensor:
        """text_emb (N, D), camera (N, 25) iff camera-conditioned -> cmap (N, cmap_dim)."""
        n = text_emb.shape[0]
        assert text_emb.shape == (n, self.text_dim), (
            f"text_emb must be (N, {self.text_dim}), got {tuple(text_emb.shape)}"
        )
        parts = [normalize_2nd_moment(self.text_embed(text_emb))]
        if self.camera_embed is not None:
            assert camera is not None and camera.shape == (n, CAMERA_LABEL_DIM), "camera label (N, 25) required"
            parts.append(normalize_2nd_moment(self.camera_embed(camera)))
        x = torch.cat(parts, dim=1)
        for layer in self.mapping:
            x = lrelu(layer(x))
        return x

    def score(self, features: torch.Tensor, cmap: torch.Tensor) -> torch.Tensor:
        """features, cmap (N, cmap_dim) -> logits (N,): StyleGAN2-ADA's projection, scaled by 1/sqrt(cmap_dim)."""
        assert features.shape == cmap.shape, f"{tuple(features.shape)} vs {tuple(cmap.shape)}"
        return (features * cmap).sum(dim=1) / math.sqrt(self.cfg.cmap_dim)

    def forward(
        self, image: torch.Tensor, raw: torch.Tensor, text_emb: torch.Tensor, camera: torch.Tensor | None
    ) -> torch.Tensor:
        """-> logits (N,)."""
        return self.score(self.features(image, raw, camera), self.condition(text_emb, camera))

    def _minibatch_std(self, x: torch.Tensor) -> torch.Tensor:
        """StyleGAN2's minibatch standard deviation over groups of samples: (N, C, H, W) -> (N, 1, H, W)."""
        n, c, h, w = x.shape
        g = min(self.cfg.mbstd_group, n)
        if n % g:
            g = 1
        y = x.reshape(g, n // g, c, h, w)  # groups are samples i, i + N/G, i + 2N/G, ...
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()  # (N/G, C, H, W)
        y = y.mean(dim=(1, 2, 3))  # (N/G,)
        return y.view(1, n // g, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)

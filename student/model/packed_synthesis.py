"""An inference-only packing of `TriplaneSynthesis` for one-asset latency on CPU.

At batch 1 the cpu preset's synthesis does ~0.2 GFLOP in ~150 small ops, so per-op overhead and
weight preparation cost as much as the convolutions. Packing precomputes everything that depends only
on the weights, once:
- each layer's folded form (`ModulatedConv.folded`, `ToRGB.folded`: gains folded into kernels, biases and
  styles, demodulation norms sum_kk W^2 precomputed), so each layer only does styles^2 @ norms;
- every layer's style affine (w -> styles) stacked into one matrix: one matmul for all styles;
- kernels and activations in channels-last layout, where oneDNN's small-batch kernels are ~20% faster.

The folding rules live with the layers (`modulated_conv.py`, `equalized.py`); `TriplaneSynthesis` stays the
reference and the tests compare the two (same planes to float rounding). Training never uses this module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from student.model.modulated_conv import FoldedModulatedConv
from student.model.synthesis import NUM_PLANES, TriplaneSynthesis


class PackedLayer(nn.Module):
    """A folded `ModulatedConv` or `ToRGB` (`FoldedModulatedConv`) with its kernel in channels-last layout."""

    def __init__(self, folded: FoldedModulatedConv):
        super().__init__()
        self.up, self.lrelu = folded.up, folded.lrelu
        self.padding = folded.weight.shape[-1] // 2
        self.register_buffer("weight", folded.weight.contiguous(memory_format=torch.channels_last))  # (O, I, k, k)
        self.register_buffer("bias", folded.bias)  # (O,)
        self.register_buffer("norms", folded.norms)  # (O, I) or None

    def forward(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        """x (N, I, H, W), styles (N, I) -> (N, O, H', W')."""
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        n = styles.shape[0]
        x = x * styles.view(n, -1, 1, 1)
        if self.norms is None:
            out = F.conv2d(x, self.weight, self.bias, padding=self.padding)
        else:
            dcoefs = (styles.square() @ self.norms.t() + 1e-8).rsqrt()  # (N, O)
            out = torch.addcmul(
                self.bias.view(1, -1, 1, 1), F.conv2d(x, self.weight, padding=self.padding), dcoefs.view(n, -1, 1, 1)
            )
        return F.leaky_relu(out, 0.2) if self.lrelu else out


class PackedSynthesis(nn.Module):
    """w (B, w_dim) -> tri-planes (B, 3, C, R, R), as the `TriplaneSynthesis` it was packed from."""

    def __init__(self, synthesis: TriplaneSynthesis):
        super().__init__()
        self.cfg, self.w_dim = synthesis.cfg, synthesis.w_dim
        self.register_buffer("const", synthesis.const.detach()[None].contiguous(memory_format=torch.channels_last))
        self.blocks = nn.ModuleList()
        style_weights, style_biases, self.style_sizes = [], [], []
        for block in synthesis.blocks:
            folded = [layer.folded() for layer in (block.conv0, block.conv1, block.torgb) if layer is not None]
            self.blocks.append(nn.ModuleList(PackedLayer(f) for f in folded))
            for f in folded:
                style_weights.append(f.style_weight)  # (I, w_dim)
                style_biases.append(f.style_bias)  # (I,)
                self.style_sizes.append(f.style_bias.shape[0])
        self.register_buffer("style_weight", torch.cat(style_weights))  # (sum I, w_dim)
        self.register_buffer("style_bias", torch.cat(style_biases))  # (sum I,)

    @torch.no_grad()
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        b = w.shape[0]
        assert w.shape == (b, self.w_dim), f"w must be (B, {self.w_dim}), got {tuple(w.shape)}"
        styles = iter(torch.addmm(self.style_bias, w, self.style_weight.t()).split(self.style_sizes, dim=1))
        x = self.const.expand(b, -1, -1, -1)  # (B, C4, 4, 4)
        img = None
        for layers in self.blocks:
            *convs, torgb = layers
            for conv in convs:
                x = conv(x, next(styles))
            y = torgb(x, next(styles))
            img = y if img is None else y + F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
        r, c = self.cfg.plane_resolution, self.cfg.plane_channels
        return img.contiguous().view(b, NUM_PLANES, c, r, r)  # (B, 3C, R, R) -> (B, 3, C, R, R)

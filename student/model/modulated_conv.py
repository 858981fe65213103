"""StyleGAN2 modulated convolution with weight demodulation, in pure PyTorch.

Karras et al. 2020 (StyleGAN2) §2.2: scale the input channels of the kernel by a per-sample style s, then
divide each output channel by the norm of its modulated kernel (demodulation) instead of normalising the
activations (AdaIN). Computed as StyleGAN2-ADA's non-fused path (training/networks.py, fused_modconv=False):
scale the activations by s, convolve with the shared kernel, scale the outputs by the demodulation
coefficients -- mathematically the per-sample kernel, but one ordinary convolution for the whole batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from student.model.equalized import LRELU_GAIN, EqualizedLinear, lrelu


def modulated_conv2d(
    x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True, padding: int = 1
) -> torch.Tensor:
    """x (N, I, H, W), weight (O, I, k, k) already gain-scaled, styles (N, I) -> (N, O, H, W)."""
    n, i = styles.shape
    assert x.shape[:2] == (n, i) and weight.shape[1] == i, (
        f"x {tuple(x.shape)}, weight {tuple(weight.shape)}, s {(n, i)}"
    )
    out = F.conv2d(x * styles.view(n, i, 1, 1), weight, padding=padding)  # (N, O, H, W)
    if not demodulate:
        return out
    # sum over (I, k, k) of (W * s)^2 = sum_i s_i^2 * sum_{kk} W_{o,i,kk}^2
    dcoefs = (styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()  # (N, O)
    return out * dcoefs.view(n, -1, 1, 1)


@dataclass(frozen=True)
class FoldedModulatedConv:
    """A `ModulatedConv` or `ToRGB` with every constant gain folded into its tensors, for inference
    (`packed_synthesis.py`). With styles s = w @ style_weight.T + style_bias (N, I), the layer is

        y = conv(up(x) * s, weight) * d + bias,   then leaky_relu(y, 0.2) when `lrelu`,

    d = rsqrt(s^2 @ norms.T + 1e-8) (N, O) when `norms` is set (demodulation), else 1. The activation's sqrt(2)
    gain is in `weight` and `bias` (leaky_relu(a y) = a leaky_relu(y) for a > 0), so `norms` comes from the
    kernel without it."""

    style_weight: torch.Tensor  # (I, w_dim)
    style_bias: torch.Tensor  # (I,)
    weight: torch.Tensor  # (O, I, k, k)
    bias: torch.Tensor  # (O,)
    norms: torch.Tensor | None  # (O, I) sum over k x k of the squared modulated kernel; None = no demodulation
    up: bool  # bilinear 2x upsampling of x first
    lrelu: bool


class ModulatedConv(nn.Module):
    """A StyleGAN2 synthesis layer: affine(w) -> styles, optional 2x upsample, modulated 3x3 conv, bias, lrelu."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        *,
        up: bool = False,
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.up = in_channels, out_channels, up
        # Styles start at 1 (StyleGAN2: affine bias_init=1) so the layer begins as a plain conv.
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0, rng=rng)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3, generator=rng))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * 9)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x (N, I, H, W), w (N, w_dim) -> (N, O, H', W') with H' = 2H when upsampling."""
        if self.up:
            # Bilinear 2x (align_corners=False) weights neighbours 1/4, 3/4: exactly StyleGAN2's [1,3,3,1] FIR
            # upsampling filter (up to the border), without the transposed convolution.
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        out = modulated_conv2d(x, self.weight * self.weight_gain, self.affine(w))
        return lrelu(out + self.bias.view(1, -1, 1, 1))

    def folded(self) -> FoldedModulatedConv:
        style_weight, style_bias = self.affine.folded()
        weight = self.weight.detach() * self.weight_gain  # (O, I, 3, 3), the kernel `forward` modulates
        return FoldedModulatedConv(
            style_weight, style_bias, weight * LRELU_GAIN, self.bias.detach() * LRELU_GAIN,
            norms=weight.square().sum(dim=(2, 3)), up=self.up, lrelu=True,
        )  # fmt: skip


class ToRGB(nn.Module):
    """StyleGAN2's ToRGB: a modulated 1x1 conv without demodulation or activation, to any channel count."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, *, rng: torch.Generator | None = None):
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0, rng=rng)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1, generator=rng))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x (N, I, H, W), w (N, w_dim) -> (N, O, H, W)."""
        # StyleGAN2 folds the 1/sqrt(fan_in) gain into the styles for ToRGB (training/networks.py ToRGBLayer).
        out = modulated_conv2d(x, self.weight, self.affine(w) * self.weight_gain, demodulate=False, padding=0)
        return out + self.bias.view(1, -1, 1, 1)

    def folded(self) -> FoldedModulatedConv:
        style_weight, style_bias = self.affine.folded(scale=self.weight_gain)  # the gain rides on the styles
        return FoldedModulatedConv(
            style_weight, style_bias, self.weight.detach(), self.bias.detach(), norms=None, up=False, lrelu=False
        )

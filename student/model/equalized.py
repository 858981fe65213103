"""Equalized-learning-rate layers (ProGAN / StyleGAN2): weights stored as N(0, 1) / lr_mul, scaled at run time.

Scaling at run time rather than at init makes Adam's per-parameter step sizes equal across layers of different
fan-in; `lr_multiplier` further slows a layer down (StyleGAN2's mapping network uses 0.01).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2)  # `lrelu`'s output gain: unit variance after a leaky ReLU of slope 0.2


class EqualizedLinear(nn.Module):
    """y = x @ (W * gain)^T + b * lr_mul with gain = lr_mul / sqrt(in_features)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias_init: float = 0.0,
        lr_multiplier: float = 1.0,
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.randn(out_features, in_features, generator=rng) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)) / lr_multiplier)
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] == self.in_features, f"expected (..., {self.in_features}), got {tuple(x.shape)}"
        return F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)

    def folded(self, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer as a plain linear map with its gains (and an extra output `scale`) folded in, for inference:
        (weight (O, I), bias (O,)), detached, with forward(x) * scale == x @ weight.T + bias."""
        return self.weight.detach() * self.weight_gain * scale, self.bias.detach() * self.bias_gain * scale


class EqualizedConv2d(nn.Module):
    """A plain (unmodulated) convolution with equalized learning rate, 'same' padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size, generator=rng))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4 and x.shape[1] == self.in_channels, (
            f"expected (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
        )
        return F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x / RMS(x) over the last dim: StyleGAN's pixel norm applied to z and to the projected condition."""
    return x * (x.square().mean(dim=-1, keepdim=True) + eps).rsqrt()


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's activation: leaky ReLU (0.2) times sqrt(2) to keep unit variance."""
    return F.leaky_relu(x, 0.2) * LRELU_GAIN

"""Renders as 8-bit pixels: the one float -> uint8 conversion of the student's images and vertex colours."""

from __future__ import annotations

import torch


def to_uint8(values: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1] (clamped) -> uint8 of the same shape, value * 255 rounded half to even (0.5 -> 128)."""
    return (values.clamp(0, 1) * 255).round().to(torch.uint8)

"""Exponential moving average of the generator's weights (Karras et al. 2018; StyleGAN2-ADA's G_ema).

The EMA generator is what checkpoints export and what previews and evaluation render: GAN iterates oscillate,
their average is smoother. StyleGAN2-ADA specifies the decay by a half-life in images (ema_kimg), shortened
early in training to a fraction (ema_rampup) of the images seen so far.
"""

from __future__ import annotations

import torch
from torch import nn


def ema_beta(batch_images: int, nimg: int, ema_kimg: float, ema_rampup: float) -> float:
    """Per-step decay: 0.5 ** (images this step / half-life in images)."""
    half_life = ema_kimg * 1000
    if ema_rampup > 0:
        half_life = min(half_life, nimg * ema_rampup)
    return 0.5 ** (batch_images / max(half_life, 1e-8))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * model, parameter by parameter (ema owns its tensors)."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p, 1 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)

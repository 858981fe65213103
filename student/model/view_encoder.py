"""The view encoder of anchored latents: one teacher view and its camera -> a distribution over z.

Training only (student/train/anchors.py): it reads what a seed changed in the teacher's object (yaw, scale,
shade) off one view, so that G(text, z) rendered at *another* view's camera can be asked to reproduce that view.
A plain strided convolution stack (equalised lr, leaky ReLU, 2x average-pool per block) down to 4x4, then two
fully connected layers that also see the camera label: the yaw of a cube is only readable relative to where the
camera stood.

It outputs a diagonal Gaussian (mean, log-variance), as a VAE's encoder does, so that a KL term can hold the
encoded latents to the prior N(0, I) that generation samples from. Its last layer starts at zero: every view
then encodes to the prior itself (mean 0, variance 1) and the encoder adds only what reproducing the other view
needs. Measured (docs/student.md §Presets, A2-A6): without the KL term, or with a weak one (0.001), the means
of all views come to share one large direction (mean cosine 0.79-0.93 between samples after 1000 steps,
with or without the zero start), away from where random z lands. KL 0.01 shrinks the means to a norm of
about 1.6 against the prior draws' 8, so the anchored draws sit where random z does, but an encoding then
carries only about 2 nats. `mapping.latent_prior` closes the gap from the other side: it fits the prior to
the encodings instead (student/model/latent_prior.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from student.model.equalized import EqualizedConv2d, EqualizedLinear, lrelu

LABEL_DIM = 25  # EG3D camera label: flattened 4x4 camera-to-world and 3x3 intrinsics
HIDDEN = 256


class ViewEncoder(nn.Module):
    def __init__(self, resolution: int, z_dim: int, channels: int, *, rng: torch.Generator) -> None:
        super().__init__()
        blocks = int(math.log2(resolution)) - 2  # down to 4x4
        if 2 ** (blocks + 2) != resolution or blocks < 1:
            raise ValueError(f"the view encoder needs a power-of-two resolution >= 8, got {resolution}")
        widths = [min(channels, 32 * 2**i) for i in range(blocks + 1)]  # 32, 64, 128, ... capped at `channels`
        self.stem = EqualizedConv2d(3, widths[0], 3, rng=rng)
        self.convs = nn.ModuleList(EqualizedConv2d(widths[i], widths[i + 1], 3, rng=rng) for i in range(blocks))
        self.fc = EqualizedLinear(widths[-1] * 16 + LABEL_DIM, HIDDEN, rng=rng)
        self.out = EqualizedLinear(HIDDEN, 2 * z_dim, rng=rng)
        nn.init.zeros_(self.out.weight)  # start at the prior: mean 0, log-variance 0 for every view
        self.resolution = resolution

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image (N, 3, H, W) in [0, 1] at `resolution`, label (N, 25) -> mean, log-variance, each (N, z_dim)."""
        assert image.shape[-1] == self.resolution, f"expected {self.resolution}px views, got {tuple(image.shape)}"
        x = lrelu(self.stem(image * 2 - 1))  # (N, 32, H, W)
        for conv in self.convs:
            x = F.avg_pool2d(lrelu(conv(x)), 2)  # (N, C', H/2, W/2)
        x = lrelu(self.fc(torch.cat([x.flatten(1), label], dim=1)))  # (N, HIDDEN)
        mean, log_var = self.out(x).chunk(2, dim=1)
        return mean, log_var.clamp(-12.0, 4.0)  # keeps exp() finite while the encoder is young

"""A learned Gaussian prior over z, fitted to the anchored latents (`mapping.latent_prior`).

Anchored latents (student/train/anchors.py) give half of each batch's fakes a z encoded from a teacher view.
Generation, though, samples z from the prior. With a weak KL term the encoded latents gather in a cone around
one shared direction (docs/student.md §Anchored latents), away from where an isotropic N(0, I) draw lands; a
strong KL closes the gap only by squeezing what an encoding carries.

This module closes it from the other side: it keeps a running Gaussian fit N(mean, S S^T) of the anchored
latents (the aggregate posterior) and maps a standard normal draw onto it, z = mean + S noise. Every z the
generator is handed (`sample_z`, an eval seed, `et3d-gen --seed`) stays standard normal; the generator applies
this map before its mapping network. The free half of the fakes in training goes through the same map, so the
GAN trains exactly what generation samples.

The fit is an exponential moving average of the first and second moments of the anchored draws (decay
`anchor.prior_decay` per step), kept in buffers: it travels with the generator's weights and is copied, not
averaged, into G_ema. Its starting point is N(0, I), the plain prior.

Measured (docs/student.md §Presets, rows P1 and P2): random z and the anchored draws then share their moments,
and scale diversity rose, but renders were no sharper and held-out Chamfer got worse. The anchored renders
themselves have the same rounded edges, so where z is drawn was not what kept shapes soft. Off in every preset.
"""

from __future__ import annotations

import torch
from torch import nn

# The fitted covariance's eigenvalues are floored at this, so that no direction of z collapses to a point.
MIN_VARIANCE = 1e-4


class LatentPrior(nn.Module):
    def __init__(self, z_dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(z_dim))  # (Z,)
        self.register_buffer("second_moment", torch.eye(z_dim))  # (Z, Z) E[z z^T]
        self.register_buffer("scale", torch.eye(z_dim))  # (Z, Z) symmetric square root of the covariance

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """noise (B, Z) standard normal -> z (B, Z) ~ N(mean, scale scale^T)."""
        return self.mean.to(noise.dtype) + noise @ self.scale.to(noise.dtype).T

    def covariance(self) -> torch.Tensor:
        """(Z, Z) the fitted covariance, E[z z^T] - mean mean^T."""
        return self.second_moment - torch.outer(self.mean, self.mean)

    @torch.no_grad()
    def update(self, mean: torch.Tensor, second_moment: torch.Tensor, decay: float) -> None:
        """Move the fit towards one step's moments of the anchored draws: mean (Z,), second_moment (Z, Z)
        (E[z z^T] over the step's draws; see `moments`), each by (1 - decay)."""
        self.mean.lerp_(mean.float(), 1 - decay)
        self.second_moment.lerp_(second_moment.float(), 1 - decay)
        values, vectors = torch.linalg.eigh(self.covariance().double())
        root = vectors * values.clamp_min(MIN_VARIANCE).sqrt()  # (Z, Z) columns scaled by sqrt(eigenvalue)
        self.scale.copy_(root @ vectors.T)


def moments(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z (N, Z) -> its mean (Z,) and second moment E[z z^T] (Z, Z), in fp32."""
    z = z.detach().float()
    return z.mean(dim=0), z.T @ z / z.shape[0]

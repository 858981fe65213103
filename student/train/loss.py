"""GAN objectives: non-saturating logistic loss, lazy R1, density smoothness, mismatched-text negatives.

StyleGAN2-ADA's loss (training/loss.py) with EG3D's additions (training/loss.py): R1 on both the final and the
raw image, and an L1 penalty between the densities at random points and at slightly perturbed copies.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from pipeline.cameras import BOX_HALF


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating loss, softplus(-D(G(z))) (Goodfellow et al. 2014, StyleGAN2)."""
    return F.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic loss: softplus(D(fake)) + softplus(-D(real))."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def mismatch_loss(mismatched_logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Real images under a wrong text are fakes (GAN-INT-CLS, Reed et al. 2016): softplus(D(x, t')).

    valid (N,) bool masks out pairs whose shuffled text happens to be the image's own prompt.
    """
    if not bool(valid.any()):
        return mismatched_logits.sum() * 0
    return F.softplus(mismatched_logits[valid]).mean()


def r1_penalty(real_logits: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): mean over samples of |d D(x) / d x|^2, summed over all inputs (EG3D:
    the final and the raw image). Differentiable (create_graph) so that it can be minimised."""
    grads = torch.autograd.grad(real_logits.sum(), inputs, create_graph=True)
    return sum(g.square().flatten(1).sum(dim=1) for g in grads).mean()


def density_smoothness(
    sigma_at: Callable[[torch.Tensor], torch.Tensor],
    batch: int,
    num_points: int,
    eps: float,
    rng: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """EG3D's density regulariser: L1 between sigma at uniform points of the box and at copies moved by eps.

    sigma_at: points (B, P, 3) -> sigma (B, P). It discourages floaters and noisy density without
    constraining the surfaces themselves.
    """
    points = (torch.rand(batch, num_points, 3, generator=rng, device=device) * 2 - 1) * BOX_HALF
    moved = points + torch.randn(points.shape, generator=rng, device=device) * eps
    sigma = sigma_at(torch.cat([points, moved], dim=1))  # (B, 2P)
    return (sigma[:, :num_points] - sigma[:, num_points:]).abs().mean()

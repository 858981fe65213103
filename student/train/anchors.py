"""Anchored latents: a z tied to one teacher sample, whose render is pulled towards that sample's views.

A GAN learns a prompt's shapes only through the discriminator's verdicts, one image at a time; in a 10-minute
CPU run that leaves soft, blobby geometry (docs/student.md §Anchored latents). The shards hold more than a
verdict's worth: every sample is four views of one object at known cameras. Tying a latent to the sample turns
that into a direct, per-pixel signal: G(text, z_s) rendered at one of sample s's cameras must reproduce that
view. Half of each batch's fakes (the even positions) take their sample's z and this loss as well as the GAN
loss; the other half keep a fresh z from the prior and the GAN loss only, so that what generation samples, a
random z, stays trained for.

Where z_s comes from (`anchor.latent`):
- "encoder": z_s ~ E(another view of sample s, its camera) (`student/model/view_encoder.py`), so z carries
  what the seed changed (yaw, scale, shade) as seen in that view, for every sample from the first step on.
  E outputs a Gaussian, z_s is drawn from it, and `anchor.kl` * KL(E's Gaussian || N(0, I)) holds the
  encodings to the prior that generation samples (a VAE's objective, with G as its decoder);
- "code": a free code per sample (Generative Latent Optimisation, Bojanowski et al. 2018). In a short run each
  code is updated only a few times (2,560 samples, 8 anchored per step), so it carries little; measured, the
  renders then regress to each prompt's average over yaws and cubes come out rounded.

Either is training state only (saved with the trainer's checkpoint, never with the generator): generation
draws z from the prior as before, or with `mapping.latent_prior` from a Gaussian fitted to the anchored draws
(student/model/latent_prior.py). `anchor.silhouette` adds an L1 term on the anchored renders' opacity against
the teacher view's silhouette. The mapping network normalises every z to the sphere, so an anchored z is a
point on the same sphere the prior samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from student.config import AnchorConfig
from student.model.discriminator import resize
from student.model.view_encoder import ViewEncoder

# A teacher pixel counts as object where some channel differs from the background by more than this. Measured
# on the demo shards (64 views): every pixel differs by 0 or by more than 0.16, so any threshold between works;
# 0.04 leaves room for a teacher whose background is not exactly flat.
SILHOUETTE_THRESHOLD = 0.04


class SampleCodes(nn.Module):
    """A learned latent per teacher sample, looked up by the sample's shard key.

    keys: every sample key of the training shards; rows follow their sorted order, so the table does not depend
    on the order the shards were listed in.
    """

    def __init__(self, keys: Sequence[str], z_dim: int, *, rng: torch.Generator) -> None:
        super().__init__()
        self.keys = sorted(set(keys))
        if not self.keys:
            raise ValueError("anchored latents need at least one sample key")
        self.row_of = {key: row for row, key in enumerate(self.keys)}
        self.table = nn.Parameter(torch.randn(len(self.keys), z_dim, generator=rng))  # (N, z_dim), like the prior

    def rows(self, keys: Sequence[str]) -> torch.Tensor:
        """(B,) table rows of `keys`; a key the table was not built from is an error that names it."""
        missing = [k for k in keys if k not in self.row_of]
        if missing:
            raise KeyError(f"sample {missing[0]!r} is not among the {len(self.keys)} samples the codes were built for")
        return torch.tensor([self.row_of[k] for k in keys], dtype=torch.long, device=self.table.device)

    def forward(self, keys: Sequence[str]) -> torch.Tensor:
        """(B, z_dim) codes of `keys`."""
        return self.table[self.rows(keys)]

    def load_by_key(self, keys: Sequence[str], table: torch.Tensor) -> int:
        """Copy the rows of a saved table (`keys` its row order) into this one, matched by key; returns how many
        rows matched. Rows of samples the saved table did not hold keep their initial values."""
        if table.shape[0] != len(keys) or table.shape[1] != self.table.shape[1]:
            raise ValueError(f"saved codes {tuple(table.shape)} do not match {len(keys)} keys x {self.table.shape[1]}")
        pairs = [(self.row_of[k], i) for i, k in enumerate(keys) if k in self.row_of]
        if pairs:
            mine, theirs = (torch.tensor(p) for p in zip(*pairs, strict=True))
            with torch.no_grad():
                self.table[mine] = table[theirs].to(self.table)
        return len(pairs)


def anchored_positions(batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(ceil(B/2),) the fakes that take their sample's code: the even positions 0, 2, 4, ...

    With paired latents (trainer.pair_sources) fake 2j is sample 2j's own render and 2j + 1 its fresh-z partner,
    so every pair is one anchored and one free sample; without pairing fake i is sample i's."""
    return torch.arange(0, batch, 2, device=device)


def reconstruction_loss(fake_image: torch.Tensor, fake_raw: torch.Tensor, real_image: torch.Tensor) -> torch.Tensor:
    """Mean L1 of the final image against the teacher's view plus the raw render against the view filtered down
    to the rendering resolution (the same filter D's raw input uses).

    fake_image (N, 3, H, W), fake_raw (N, 3, h, w), real_image (N, 3, H', W') in [0, 1] -> scalar.
    """
    real_final = resize(real_image, fake_image.shape[-1])
    real_raw = resize(real_final, fake_raw.shape[-1])
    return F.l1_loss(fake_image.float(), real_final) + F.l1_loss(fake_raw.float(), real_raw)


def teacher_silhouette(image: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Where a teacher view shows the object: image (N, 3, H, W) in [0, 1], its background colour (N, 3) ->
    (N, H, W), 1 where some channel differs from the background by more than SILHOUETTE_THRESHOLD, else 0."""
    difference = (image.float() - background.float().to(image.device)[:, :, None, None]).abs().amax(dim=1)  # (N, H, W)
    return (difference > SILHOUETTE_THRESHOLD).float()


def silhouette_loss(opacity: torch.Tensor, image: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Mean L1 of the rendered opacity (N, h, w) against the teacher view's silhouette (image (N, 3, H, W),
    background (N, 3)), filtered down to the rendering resolution as D's raw input is: a soft edge where a
    pixel is partly covered. Acts on density directly, whatever the object's colour against the background."""
    mask = resize(teacher_silhouette(image, background)[:, None], opacity.shape[-1])[:, 0]  # (N, h, w)
    return F.l1_loss(opacity.float(), mask)


def build_anchor_net(
    cfg: AnchorConfig, keys: Sequence[str], resolution: int, z_dim: int, rng: torch.Generator
) -> SampleCodes | ViewEncoder:
    """The module anchored latents come from: the view encoder (for views at `resolution`) or one code per key."""
    if cfg.latent == "code":
        return SampleCodes(keys, z_dim, rng=rng)
    return ViewEncoder(resolution, z_dim, cfg.channels, rng=rng)


def sample_posterior(mean: torch.Tensor, log_var: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """z = mean + sigma * eps, eps ~ N(0, I) from `rng` (the reparameterisation: differentiable in both)."""
    eps = torch.randn(mean.shape, generator=rng, device=mean.device, dtype=mean.dtype)
    return mean + (0.5 * log_var).exp() * eps


def kl_to_prior(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)), summed over z's dimensions, averaged over samples: (N, Z) -> scalar."""
    return 0.5 * (mean.square() + log_var.exp() - 1 - log_var).sum(dim=1).mean()

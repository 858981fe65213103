"""The mapping network: normalised z, the projected text embedding and optionally the camera -> w.

Follows StyleGAN2-ADA's conditional mapping (training/networks.py MappingNetwork): the condition goes through
its own linear embedding and is normalised to unit second moment before being concatenated with the
normalised z, so neither input dominates by scale; then `num_layers` FC layers at lr multiplier 0.01.
The camera, when used (EG3D conditions w on the 25-float camera label), gets a separate embedding because its
entries are O(1) while a sentence embedding's are O(1/sqrt(D)).
"""

from __future__ import annotations

import torch
from torch import nn

from student.config import MappingConfig
from student.model.equalized import EqualizedLinear, lrelu, normalize_2nd_moment

CAMERA_LABEL_DIM = 25  # EG3D's flat camera label: cam-to-world (16) + normalised intrinsics (9)


class MappingNetwork(nn.Module):
    def __init__(self, cfg: MappingConfig, text_dim: int, *, rng: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg, self.text_dim = cfg, text_dim
        self.text_embed = EqualizedLinear(text_dim, cfg.embed_dim, rng=rng)
        self.camera_embed = EqualizedLinear(CAMERA_LABEL_DIM, cfg.embed_dim, rng=rng) if cfg.camera_cond else None
        width = cfg.z_dim + cfg.embed_dim * (2 if cfg.camera_cond else 1)
        layers = []
        for _ in range(cfg.num_layers):
            layers.append(EqualizedLinear(width, cfg.w_dim, lr_multiplier=cfg.lr_multiplier, rng=rng))
            width = cfg.w_dim
        self.layers = nn.ModuleList(layers)

    def forward(self, z: torch.Tensor, text_emb: torch.Tensor, camera: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, z_dim), text_emb (B, text_dim), camera (B, 25) iff camera_cond -> w (B, w_dim)."""
        b = z.shape[0]
        assert z.shape == (b, self.cfg.z_dim), f"z must be ({b}, {self.cfg.z_dim}), got {tuple(z.shape)}"
        assert text_emb.shape == (b, self.text_dim), (
            f"text_emb must be ({b}, {self.text_dim}), got {tuple(text_emb.shape)}"
        )
        parts = [normalize_2nd_moment(z), normalize_2nd_moment(self.text_embed(text_emb))]
        if self.camera_embed is not None:
            assert camera is not None and camera.shape == (b, CAMERA_LABEL_DIM), "camera label (B, 25) required"
            parts.append(normalize_2nd_moment(self.camera_embed(camera)))
        else:
            assert camera is None, "this mapping network is not camera-conditioned"
        x = torch.cat(parts, dim=1)  # (B, z_dim + embed_dim [+ embed_dim])
        for layer in self.layers:
            x = lrelu(layer(x))
        return x

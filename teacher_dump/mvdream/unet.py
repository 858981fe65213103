"""MVDream's multi-view UNet: SD-2.1's ldm UNet with cross-view attention and a camera embedding.

Built from a `MultiViewUNetConfig` alone (no size is fixed here), with a module tree whose
state-dict keys are exactly MVDream's (``time_embed``, ``camera_embed``, ``input_blocks.i.j``,
``middle_block.j``, ``output_blocks.i.j``, ``out``; docs/mvdream.md §UNet, §Key layouts), so the
diffusers-format ``unet/diffusion_pytorch_model.safetensors`` and the original checkpoint (after
its ``model.diffusion_model.`` prefix) load without renaming.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from teacher_dump.mvdream.attention import SpatialTransformer3D
from teacher_dump.mvdream.config import MultiViewUNetConfig
from teacher_dump.mvdream.resnet import Downsample, GroupNorm32, ResBlock, Upsample


def timestep_embedding(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding, **cos first** (docs/mvdream.md §UNet): (N,) float -> (N, dim) float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps.float()[:, None] * freqs[None]  # (N, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class UNetStage(nn.ModuleList):
    """One ``input_blocks.i`` / ``middle_block`` / ``output_blocks.i`` entry: layers run in order,
    each given what it needs (the embedding for a ResBlock, the text and view count for attention)."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer3D):
                x = layer(x, context, num_frames)
            else:
                x = layer(x)
        return x


class MultiViewUNet(nn.Module):
    """Predicts the noise of F views of each object jointly.

    forward(x (N*F, C_in, h, w), timesteps (N*F,), context (N*F, 77, context_dim),
            camera (N*F, camera_dim), num_frames F) -> (N*F, C_out, h, w)
    The F views of one object are contiguous in the batch (sample index n*F + f, docs/mvdream.md §UNet).
    """

    def __init__(self, config: MultiViewUNetConfig) -> None:
        super().__init__()
        self.config = config
        mc, emb_dim = config.model_channels, config.time_embed_dim
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # The camera MLP whose output is added to the time embedding (docs/mvdream.md §UNet).
        self.camera_embed = nn.Sequential(nn.Linear(config.camera_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        self.input_blocks = nn.ModuleList([UNetStage([nn.Conv2d(config.in_channels, mc, 3, padding=1)])])
        skip_channels, ch, factor = [mc], mc, 1
        last_level = len(config.channel_mult) - 1
        for level, width in enumerate(config.level_channels):
            for _ in range(config.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb_dim, width)]
                ch = width
                if factor in config.attention_resolutions:
                    layers.append(self._transformer(ch))
                self.input_blocks.append(UNetStage(layers))
                skip_channels.append(ch)
            if level != last_level:
                self.input_blocks.append(UNetStage([Downsample(ch)]))
                skip_channels.append(ch)
                factor *= 2

        # The middle block always attends, whatever attention_resolutions says (docs/mvdream.md §UNet).
        self.middle_block = UNetStage([ResBlock(ch, emb_dim, ch), self._transformer(ch), ResBlock(ch, emb_dim, ch)])

        self.output_blocks = nn.ModuleList()
        for level, width in reversed(list(enumerate(config.level_channels))):
            for i in range(config.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_dim, width)]
                ch = width
                if factor in config.attention_resolutions:
                    layers.append(self._transformer(ch))
                if level and i == config.num_res_blocks:
                    layers.append(Upsample(ch))
                    factor //= 2
                self.output_blocks.append(UNetStage(layers))

        # Slot 1 is SiLU, slot 2 the conv: `out.0` / `out.2` as in the reference.
        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(ch, config.out_channels, 3, padding=1))

    def _transformer(self, channels: int) -> SpatialTransformer3D:
        heads = channels // self.config.num_head_channels
        return SpatialTransformer3D(
            channels, heads, self.config.num_head_channels, self.config.transformer_depth, self.config.context_dim
        )

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        camera: torch.Tensor,
        num_frames: int,
    ) -> torch.Tensor:
        self._check_inputs(x, timesteps, context, camera, num_frames)
        dtype = self.out[2].weight.dtype
        t_emb = timestep_embedding(timesteps, self.config.model_channels).to(dtype)  # (N*F, mc)
        emb = self.time_embed(t_emb) + self.camera_embed(camera.to(dtype))  # (N*F, 4*mc)
        context = context.to(dtype)
        h = x.to(dtype)
        skips = []
        for stage in self.input_blocks:
            h = stage(h, emb, context, num_frames)
            skips.append(h)
        h = self.middle_block(h, emb, context, num_frames)
        for stage in self.output_blocks:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb, context, num_frames)
        return self.out(h)

    def _check_inputs(
        self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, camera: torch.Tensor, num_frames: int
    ) -> None:
        cfg = self.config
        if x.ndim != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"x must be (N*F, {cfg.in_channels}, h, w), got {tuple(x.shape)}")
        n = x.shape[0]
        if num_frames < 1 or n % num_frames:
            raise ValueError(f"num_frames {num_frames} does not divide the batch of {n} views")
        side = cfg.downsampling_factor
        if x.shape[2] % side or x.shape[3] % side:
            raise ValueError(f"latent size {tuple(x.shape[2:])} is not a multiple of {side} (one halving per level)")
        bad = {}
        if timesteps.shape != (n,):
            bad["timesteps"] = tuple(timesteps.shape)
        if context.ndim != 3 or context.shape[0] != n or context.shape[2] != cfg.context_dim:
            bad["context"] = tuple(context.shape)
        if camera.shape != (n, cfg.camera_dim):
            bad["camera"] = tuple(camera.shape)
        if bad:
            raise ValueError(
                f"inputs for a batch of {n}: timesteps ({n},), context ({n}, L, {cfg.context_dim}), "
                f"camera ({n}, {cfg.camera_dim}); got {bad}"
            )

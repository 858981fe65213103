"""Configs of the published ``sd-v2.1-base-4view`` checkpoint, which stores weights but no config.

The single-file checkpoint is a bare state dict (docs/mvdream.md §Key layouts); its sizes
come from MVDream's ``configs/sd-v2-base.yaml`` (docs/mvdream.md §UNet). A diffusers-format folder carries
these same values in its ``unet/``, ``vae/`` and ``scheduler/`` config files; they are the defaults
of the single-file loader only, and a test pins them to ``tests/golden/layout/*.json``.
"""

from __future__ import annotations

from typing import Any

from teacher_dump.mvdream.config import MultiViewUNetConfig

# yaml `unet_config.params` (docs/mvdream.md §UNet).
SD21_4VIEW_UNET = MultiViewUNetConfig(
    model_channels=320,
    channel_mult=(1, 2, 4, 4),
    num_res_blocks=2,
    attention_resolutions=(4, 2, 1),
    num_head_channels=64,
    transformer_depth=1,
    context_dim=1024,
    camera_dim=16,
    in_channels=4,
    out_channels=4,
    image_size=32,
)

# yaml `first_stage_config.params.ddconfig` in diffusers `AutoencoderKL` terms (docs/mvdream.md §Key layouts).
SD21_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 256,
    "scaling_factor": 0.18215,
}

# The DDIM schedule of MVDream's training (yaml linear_start/linear_end, docs/mvdream.md §Sampler).
MVDREAM_DDIM: dict[str, Any] = {
    "_class_name": "DDIMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}

"""Parity adapters: the shipped UNet, cameras and pipeline behind the plain signatures the golden data uses.

`tests/test_mvdream_parity.py` feeds them the golden random weights and inputs in ``tests/golden/`` and
compares their outputs with the reference implementations' in fp32 on CPU (docs/mvdream.md §Golden data).
Each adapter calls only this package's shipped code.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pipeline.cameras import mvdream_camera_matrices
from teacher_dump.mvdream.config import MultiViewUNetConfig
from teacher_dump.mvdream.loading import unet_from_state_dict
from teacher_dump.mvdream.pipeline import MVDreamPipeline

UNetForward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


def build_unet(config: dict, state_dict: dict[str, torch.Tensor]) -> UNetForward:
    """MVDream-named config + reference-named weights (loaded strictly) -> an fp32 eval forward."""
    unet = unet_from_state_dict(MultiViewUNetConfig.from_dict(config), state_dict).float()

    def fwd(x, timesteps, context, camera, num_frames):
        with torch.no_grad():
            return unet(x, timesteps, context, camera, num_frames)  # (N*F, C_out, h, w)

    return fwd


def get_camera(
    num_frames: int, elevation: float, azimuth_start: float, azimuth_span: float, blender_coord: bool
) -> np.ndarray:
    """The reference ``get_camera``: (num_frames, 16) row-major unit-sphere camera-to-world matrices."""
    return mvdream_camera_matrices(num_frames, elevation, azimuth_start, azimuth_span, blender_coord).reshape(-1, 16)


def run_pipeline(folder: str, call: dict, latents_init: torch.Tensor) -> dict[str, torch.Tensor]:
    """The reference pipeline call on a diffusers-format folder, starting from `latents_init` (V, C, h, w)."""
    if call["height"] != call["width"]:
        raise ValueError(f"square images only, got {call['height']}x{call['width']}")
    if call["eta"] != 0.0:
        raise ValueError(f"DDIM with eta 0 only, got {call['eta']}")
    pipe = MVDreamPipeline.from_pretrained(folder)
    out = pipe(
        [call["prompt"]],
        latents=latents_init[None],  # (1, V, C, h, w)
        negative_prompt=call["negative_prompt"],
        num_inference_steps=call["num_inference_steps"],
        guidance_scale=call["guidance_scale"],
        elevation=call["elevation"],
        num_views=call["num_frames"],
        resolution=call["height"],
    )
    return {"latents_final": out.latents[0], "images": out.images[0]}


def assemble_tiny_folder(golden: str | Path, dest: str | Path) -> Path:
    """The golden tiny MVDream folder with its UNet weights copied in, as the check assembles it."""
    dest = Path(dest)
    shutil.copytree(Path(golden) / "tiny_pipeline", dest)
    shutil.copy(Path(golden) / "tiny_unet.safetensors", dest / "unet" / "diffusion_pytorch_model.safetensors")
    return dest

"""Text -> V views with MVDream: DDIM (eta 0) with classifier-free guidance, then the VAE decode.

DDIM at 50 steps is the reference sampler and the default. `scheduler="dpm++"` swaps in diffusers'
DPMSolverMultistepScheduler (DPM-Solver++, 2nd order, Lu et al. 2022), which reaches comparable samples in
~20 steps: the same UNet calls, the same guidance, only the update from eps to the next latent differs.

Sampling follows the reference pipeline step for step (docs/mvdream.md §Sampler): one UNet
call per step on ``[uncond views, cond views]``, ``eps = eps_u + g (eps_c - eps_u)``, decode
``latents / scaling_factor`` and map ``x / 2 + 0.5`` into [0, 1]. Extensions: batches of prompts,
one explicit generator per prompt, per-prompt elevation and azimuth start.

Cameras. The UNet is conditioned on MVDream's unit-sphere matrices (docs/mvdream.md §Cameras,
`pipeline.cameras.mvdream_camera_matrices`, azimuth span 360). The output reports the same matrices
in the project's convention: translation scaled to `DEFAULT_RADIUS` and vertical fov
`DEFAULT_FOVY_DEG`, the documented framing MVDream itself does not encode (docs/design.md §Cameras).

Precision. The UNet runs in the pipeline's dtype (fp16/bf16 on GPU); latents, the DDIM update, the
text encoder and the VAE stay in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.cameras import DEFAULT_FOVY_DEG, DEFAULT_RADIUS, mvdream_camera_matrices
from teacher_dump.mvdream.config import MultiViewUNetConfig
from teacher_dump.mvdream.loading import MVDreamComponents, load_folder, load_single_file

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
SCHEDULERS = ("ddim", "dpm++")


def make_scheduler(name: str, config: dict):
    """A fresh diffusers scheduler (set_timesteps mutates it) from the model's DDIM scheduler config."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "dpm++":
        # The model's noise schedule (betas, steps_offset, spacing) with DPM-Solver++'s multistep update.
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2)
    raise ValueError(f"unknown scheduler {name!r}; accepted: {', '.join(SCHEDULERS)}")


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``torch.float16`` or one of float32/float16/bfloat16 (fp32/fp16/half/bf16) -> a torch dtype."""
    name = str(dtype).removeprefix("torch.") if isinstance(dtype, torch.dtype) else _DTYPE_ALIASES.get(dtype, dtype)
    if name not in _DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}; accepted: {sorted(_DTYPES) + sorted(_DTYPE_ALIASES)}")
    return _DTYPES[name]


@dataclass(frozen=True)
class MVDreamOutput:
    """B prompts x V views, on the CPU.

    images:        (B, V, H, W, 3) float32 in [0, 1]
    latents:       (B, V, C, H/8, W/8) float32, the final latents before decoding
    cameras:       (B, V, 4, 4) float32 camera-to-world at `DEFAULT_RADIUS` (world frame z up)
    fovy:          (B, V) float32 degrees (`DEFAULT_FOVY_DEG`)
    prompt_embeds: (B, 77, D) float32, the text conditioning the UNet saw
    """

    images: torch.Tensor
    latents: torch.Tensor
    cameras: torch.Tensor
    fovy: torch.Tensor
    prompt_embeds: torch.Tensor

    def views_uint8(self) -> np.ndarray:
        """(B, V, H, W, 3) uint8, rounded like diffusers' ``numpy_to_pil``."""
        return (self.images * 255).round().to(torch.uint8).numpy()


def _per_prompt(value: float | Sequence[float], count: int, name: str) -> list[float]:
    values = [float(value)] * count if isinstance(value, int | float) else [float(v) for v in value]
    if len(values) != count:
        raise ValueError(f"{name} needs one value or one per prompt ({count}), got {len(values)}")
    return values


class MVDreamPipeline:
    """MVDream's multi-view sampler; build it with `from_pretrained` or `from_single_file`."""

    def __init__(self, components: MVDreamComponents, device: str | torch.device, dtype: torch.dtype) -> None:
        self.device = torch.device(device)
        if dtype == torch.float16 and self.device.type != "cuda":
            raise ValueError(f"float16 needs a CUDA device, got {self.device}; use float32 or bfloat16")
        self.dtype = dtype
        self.unet = components.unet.to(self.device, dtype)
        self.vae = components.vae.to(self.device)  # loaded in float32
        self.text_encoder = components.text_encoder.to(self.device)  # loaded in float32
        self.tokenizer = components.tokenizer
        self.scheduler_config = components.scheduler_config
        self.unet_weights = components.unet_weights
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, device: str | torch.device = "cpu", dtype: str | torch.dtype = torch.float32
    ) -> MVDreamPipeline:
        """Load a diffusers-format MVDream folder (model_index.json, unet/, vae/, text_encoder/, ...)."""
        return cls(load_folder(folder), device, parse_dtype(dtype))

    @classmethod
    def from_single_file(
        cls,
        path: str | Path,
        text_encoder_path: str | Path,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = torch.float32,
        unet_config: MultiViewUNetConfig | str | Path | None = None,
        vae_config: dict | str | Path | None = None,
    ) -> MVDreamPipeline:
        """Load the original checkpoint plus a folder with ``text_encoder/`` and ``tokenizer/``.

        unet_config / vae_config: for a checkpoint of other sizes than the published one (objects or
        JSON files); None means sd-v2.1-base-4view's.
        """
        return cls(load_single_file(path, text_encoder_path, unet_config, vae_config), device, parse_dtype(dtype))

    @property
    def resolution_multiple(self) -> int:
        """Image sides must be multiples of this: the VAE's factor times the UNet's halvings."""
        return self.vae_scale * self.unet.config.downsampling_factor

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """(B,) prompts -> (B, 77, D) float32: ``last_hidden_state`` of the 77-token padded ids.

        As the reference pipeline (docs/mvdream.md §Text encoder).
        """
        ids = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids  # (B, 77)
        return self.text_encoder(ids.to(self.device))[0].float()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) latents -> (N, 8h, 8w, 3) float32 images in [0, 1]."""
        x = self.vae.decode(latents.float() / self.vae.config.scaling_factor).sample  # (N, 3, H, W) in ~[-1, 1]
        return (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)

    @torch.no_grad()
    def __call__(
        self,
        prompts: list[str],
        rngs: list[torch.Generator] | None = None,
        *,
        latents: torch.Tensor | None = None,
        negative_prompt: str = "",
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        scheduler: str = "ddim",
        elevation: float | Sequence[float] = 0.0,
        azimuth_start: float | Sequence[float] = 0.0,
        num_views: int = 4,
        resolution: int = 256,
    ) -> MVDreamOutput:
        """Sample V views for each prompt.

        rngs:       one per prompt, drawing that prompt's (V, C, h, w) starting noise in float32 on
                    the rng's device, so a seed gives the same noise on any sampling device.
        latents:    (B, V, C, h, w) starting noise instead of rngs (DDIM's init sigma is 1).
        scheduler:  "ddim" (the reference, eta 0) or "dpm++" (DPM-Solver++ multistep, ~20 steps suffice).
        elevation, azimuth_start: degrees, one value or one per prompt (reference defaults 0, 0).
        """
        b = self._check_call(prompts, rngs, latents, num_inference_steps, num_views, resolution)
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}; accepted: {', '.join(SCHEDULERS)}")
        v, side = num_views, resolution // self.vae_scale
        elevations = _per_prompt(elevation, b, "elevation")
        azimuths = _per_prompt(azimuth_start, b, "azimuth_start")
        unit = np.stack([self._unit_cameras(v, e, a) for e, a in zip(elevations, azimuths, strict=True)])  # (B,V,4,4)
        camera = torch.from_numpy(unit).reshape(b * v, 16).to(self.device)  # row-major (docs/mvdream.md §Cameras)
        camera = torch.cat([camera, camera])  # (2BV, 16): the same cameras for both CFG halves

        cond = self.encode_prompt(prompts)  # (B, 77, D)
        uncond = self.encode_prompt([negative_prompt])  # (1, 77, D)
        # Uncond first, views contiguous within each half (docs/mvdream.md §Sampler).
        context = torch.cat([uncond.expand(b * v, -1, -1), cond.repeat_interleave(v, dim=0)])  # (2BV, 77, D)

        if latents is None:
            channels = self.unet.config.in_channels
            noise = [torch.randn((v, channels, side, side), generator=rng, device=rng.device) for rng in rngs]
            latents = torch.stack(noise)  # (B, V, C, h, w)
        x = latents.reshape(b * v, *latents.shape[2:]).to(self.device, torch.float32)  # (BV, C, h, w)

        sampler = make_scheduler(scheduler, self.scheduler_config)
        sampler.set_timesteps(num_inference_steps, device=self.device)
        step_kwargs = {"eta": 0.0} if scheduler == "ddim" else {}
        x = x * sampler.init_noise_sigma
        for t in sampler.timesteps:
            timesteps = torch.full((2 * b * v,), float(t), device=self.device)  # (2BV,)
            eps = self.unet(torch.cat([x, x]), timesteps, context, camera, v).float()  # (2BV, C, h, w)
            eps_uncond, eps_cond = eps.chunk(2)
            eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
            x = sampler.step(eps, t, x, **step_kwargs).prev_sample

        # One object at a time bounds the decoder's activation memory at V images.
        images = torch.cat([self.decode(chunk) for chunk in x.split(v)])  # (BV, H, W, 3)
        cameras = torch.from_numpy(unit).clone()
        cameras[..., :3, 3] *= DEFAULT_RADIUS
        return MVDreamOutput(
            images=images.reshape(b, v, *images.shape[1:]).cpu(),
            latents=x.reshape(b, v, *x.shape[1:]).cpu(),
            cameras=cameras,
            fovy=torch.full((b, v), DEFAULT_FOVY_DEG),
            prompt_embeds=cond.cpu(),
        )

    @staticmethod
    def _unit_cameras(num_views: int, elevation: float, azimuth_start: float) -> np.ndarray:
        """(V, 4, 4) unit-sphere cameras at azimuths start + k 360/V.

        The reference's float ``arange`` (docs/mvdream.md §Cameras step 1) returns one more azimuth, start + 360, for
        many starts (e.g. V=4, start 256.2): that wrap-around duplicate of view 0 is dropped.
        """
        return mvdream_camera_matrices(num_views, elevation, azimuth_start, 360.0)[:num_views]

    def check_settings(self, num_inference_steps: int, num_views: int, resolution: int) -> None:
        """Raise ValueError for sampling settings this model cannot run, naming the bad value."""
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {num_views}")
        m = self.resolution_multiple
        if resolution < m or resolution % m:
            raise ValueError(
                f"resolution {resolution} must be a positive multiple of {m} (VAE factor {self.vae_scale} "
                f"x UNet factor {self.unet.config.downsampling_factor})"
            )
        train_steps = self.scheduler_config["num_train_timesteps"]
        if not 1 <= num_inference_steps <= train_steps:
            raise ValueError(f"num_inference_steps must be in [1, {train_steps}], got {num_inference_steps}")

    def _check_call(
        self,
        prompts: list[str],
        rngs: list[torch.Generator] | None,
        latents: torch.Tensor | None,
        num_inference_steps: int,
        num_views: int,
        resolution: int,
    ) -> int:
        """Validate the arguments of one call; returns the number of prompts B."""
        if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompts must be a non-empty list of strings, got {prompts!r}")
        b = len(prompts)
        self.check_settings(num_inference_steps, num_views, resolution)
        if (rngs is None) == (latents is None):
            raise ValueError("pass exactly one of rngs (one per prompt) or latents")
        if rngs is not None and len(rngs) != b:
            raise ValueError(f"need one rng per prompt ({b}), got {len(rngs)}")
        side = resolution // self.vae_scale
        want = (b, num_views, self.unet.config.in_channels, side, side)
        if latents is not None and tuple(latents.shape) != want:
            raise ValueError(f"latents must be (B, V, C, h, w) = {want}, got {tuple(latents.shape)}")
        return b

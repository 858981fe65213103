"""The MVDream teacher: the real multi-view diffusion model (``teacher_dump/mvdream/``).

Built once per dump worker (loading takes seconds to minutes), then `generate` samples V views per
(prompt, seed). A seed fixes everything random about its sample: the starting noise comes from
``torch.Generator("cpu").manual_seed(seed)`` (as the reference pipeline with that generator), and
an elevation / azimuth range is sampled from a separate numpy stream keyed by the seed, so a sample
does not depend on the batch it was generated in.

Cameras: the UNet is conditioned on MVDream's unit-sphere matrices (docs/mvdream.md
§Cameras); the output reports them with the translation scaled to `pipeline.cameras.DEFAULT_RADIUS` and
the vertical fov `DEFAULT_FOVY_DEG`, the framing MVDream does not encode (docs/design.md §Cameras).

Full-size MVDream needs a GPU in practice (one 50-step sample costs minutes on a 2-core CPU,
docs/mvdream.md §Cost): `uses_gpu` tells the Ray driver to give each actor one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from teacher_dump.teachers.base import Teacher, TeacherOutput, register_teacher

_SINGLE_FILE_SUFFIXES = (".ckpt", ".pt", ".pth", ".safetensors")
_CAMERA_STREAM = 0x4D5644  # numpy SeedSequence key of the camera draws ("MVD"), apart from the noise
_FINGERPRINT_BYTES = 1 << 20

Angle = float | tuple[float, float]


def _angle(value: Angle, name: str) -> Angle:
    """A fixed angle, or an inclusive-exclusive (low, high) range sampled per seed."""
    if isinstance(value, int | float):
        return float(value)
    lo, hi = (float(v) for v in value)
    if not lo <= hi:
        raise ValueError(f"{name} range must be (low, high) with low <= high, got {value!r}")
    return (lo, hi)


def _fingerprint(path: Path) -> str:
    """Identifies a weights file cheaply: sha256 of its size and first MiB (the header lists every tensor)."""
    digest = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as f:
        digest.update(f.read(_FINGERPRINT_BYTES))
    return digest.hexdigest()[:12]


@register_teacher("mvdream")
class MVDreamTeacher(Teacher):
    """MVDream from a diffusers-format folder, or from the original single file + a text-encoder folder.

    path:              MVDream folder, or ``sd-v2.1-base-4view`` as .ckpt/.pt/.pth/.safetensors
    text_encoder_path: folder with ``text_encoder/`` and ``tokenizer/`` (single-file case only)
    unet_config, vae_config: JSON files describing a single file of other sizes than the published
                       sd-v2.1-base-4view (MVDream/ldm UNet keys; diffusers `AutoencoderKL` keys)
    device, dtype:     default cuda if available else cpu; float16 on cuda, float32 on cpu
    elevation, azimuth_start: degrees, fixed or a (low, high) range drawn per seed
    batch_size:        prompts per sampler call (the UNet sees 2 x batch_size x num_views latents)
    """

    uses_gpu = True

    def __init__(
        self,
        path: str | Path,
        text_encoder_path: str | Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        scheduler: str = "ddim",
        elevation: Angle = 15.0,
        azimuth_start: Angle = 0.0,
        num_views: int = 4,
        resolution: int = 256,
        negative_prompt: str = "",
        batch_size: int = 1,
        unet_config: str | Path | None = None,
        vae_config: str | Path | None = None,
    ) -> None:
        from teacher_dump.mvdream.pipeline import SCHEDULERS, MVDreamPipeline, parse_dtype

        path = Path(path)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = parse_dtype(dtype or ("float16" if torch.device(device).type == "cuda" else "float32"))
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}; accepted: {', '.join(SCHEDULERS)}")
        self.scheduler = scheduler
        self.elevation = _angle(elevation, "elevation")
        self.azimuth_start = _angle(azimuth_start, "azimuth_start")
        self.num_inference_steps, self.guidance_scale = num_inference_steps, float(guidance_scale)
        self.num_views, self.resolution, self.negative_prompt = num_views, resolution, negative_prompt
        self.batch_size = batch_size
        if path.is_dir():
            extra = {"text_encoder_path": text_encoder_path, "unet_config": unet_config, "vae_config": vae_config}
            given = sorted(k for k, v in extra.items() if v is not None)
            if given:
                raise ValueError(f"{given} are for a single-file checkpoint; {path} is a folder")
            self.pipe = MVDreamPipeline.from_pretrained(path, device, torch_dtype)
        elif path.suffix.lower() in _SINGLE_FILE_SUFFIXES:
            if not path.is_file():
                raise FileNotFoundError(f"MVDream checkpoint not found: {path}")
            if text_encoder_path is None:
                raise ValueError(f"{path.name} is a single-file checkpoint: pass text_encoder_path too")
            self.pipe = MVDreamPipeline.from_single_file(
                path, text_encoder_path, device, torch_dtype, unet_config=unet_config, vae_config=vae_config
            )
        else:
            raise FileNotFoundError(
                f"MVDream path {path} is neither a folder nor a {'/'.join(_SINGLE_FILE_SUFFIXES)} file"
            )
        # Validate the sampling settings once, here, rather than on the first batch of a dump.
        self.pipe.check_settings(num_inference_steps, num_views, resolution)
        self._model_id = {"model": path.name, "weights_fingerprint": _fingerprint(self.pipe.unet_weights)}

    def config(self) -> dict:
        # The sampler is named only when it is not the reference DDIM, so dumps made before it was an option
        # keep their config hash and still resume.
        sampler = {} if self.scheduler == "ddim" else {"scheduler": self.scheduler}
        return {
            **self._model_id,
            "dtype": str(self.pipe.dtype).removeprefix("torch."),
            **sampler,
            "num_inference_steps": self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
            "elevation": self.elevation,
            "azimuth_start": self.azimuth_start,
            "num_views": self.num_views,
            "resolution": self.resolution,
            "negative_prompt": self.negative_prompt,
        }

    def camera_distribution(self) -> dict:
        from pipeline.cameras import DEFAULT_FOVY_DEG, DEFAULT_RADIUS

        e = self.elevation
        return {
            "elevation_range": [e, e] if isinstance(e, float) else list(e),
            "radius": DEFAULT_RADIUS,
            "fovy_deg": DEFAULT_FOVY_DEG,
        }

    def _draw(self, value: Angle, rng: np.random.Generator) -> float:
        return value if isinstance(value, float) else float(rng.uniform(*value))

    def generate(self, prompts: list[str], seeds: list[int]) -> TeacherOutput:
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds")
        views, cameras, fovy = [], [], []
        for start in range(0, len(prompts), self.batch_size):
            batch_prompts = prompts[start : start + self.batch_size]
            batch_seeds = seeds[start : start + self.batch_size]
            rngs = [np.random.default_rng([_CAMERA_STREAM, seed]) for seed in batch_seeds]
            out = self.pipe(
                batch_prompts,
                [torch.Generator("cpu").manual_seed(seed) for seed in batch_seeds],
                negative_prompt=self.negative_prompt,
                num_inference_steps=self.num_inference_steps,
                guidance_scale=self.guidance_scale,
                scheduler=self.scheduler,
                elevation=[self._draw(self.elevation, rng) for rng in rngs],
                azimuth_start=[self._draw(self.azimuth_start, rng) for rng in rngs],
                num_views=self.num_views,
                resolution=self.resolution,
            )
            views.append(out.views_uint8())
            cameras.append(out.cameras.numpy())
            fovy.append(out.fovy.numpy())
        return TeacherOutput(
            views=np.concatenate(views), cameras=np.concatenate(cameras).astype(np.float32), fovy=np.concatenate(fovy)
        )

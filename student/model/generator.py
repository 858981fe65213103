"""The text-conditioned tri-plane generator and its inference API.

prompt embedding (+ z) --mapping--> w --synthesis--> tri-planes (B, 3, C, R, R): the 3D asset, in one forward
pass. z is standard normal wherever it is handed in; with `mapping.latent_prior` the generator first maps it onto
a Gaussian learned in training (student/model/latent_prior.py). Rendering an asset: rays from the shared
cameras, tri-plane decoder queried at stratified + importance samples, alpha compositing onto white at the
neural-rendering resolution, super-resolution to the output.

Stable API used by generation (`et3d-gen`): `from_pretrained`, `config`, `text_encoder_name`, `text_dim`,
`sample_z`, `prior_z`, `planes`, `query`, `render`, `render_uint8`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from pipeline.atomic import atomic_path, atomic_write_json
from student.config import BACKGROUNDS, SCHEMA_VERSION, GeneratorConfig, from_dict, to_dict
from student.model.decoder import RGB, TriplaneDecoder
from student.model.latent_prior import LatentPrior
from student.model.mapping import MappingNetwork
from student.model.superres import SuperResolution, plane_code
from student.model.synthesis import NUM_PLANES, TriplaneSynthesis
from student.render.compositing import BACKGROUND
from student.render.pixels import to_uint8
from student.render.rays import camera_rays
from student.render.renderer import VolumeRenderer
from student.render.triplane import sample_triplane_planar
from student.run_layout import MODEL_CONFIG, MODEL_WEIGHTS

MODEL_KIND = "et3d-triplane-generator"


@dataclass(frozen=True)
class Rendering:
    image: torch.Tensor  # (B, V, 3, H, W) super-resolved output (not clamped: the discriminator sees it raw)
    raw: torch.Tensor  # (B, V, 3, h, w) raw RGB of the neural rendering
    opacity: torch.Tensor  # (B, V, h, w)


class TriplaneGenerator(nn.Module):
    def __init__(self, cfg: GeneratorConfig, *, rng: torch.Generator | None = None) -> None:
        super().__init__()
        if cfg.text_dim < 1 or not cfg.text_encoder:
            raise ValueError(f"text_encoder and text_dim must be set (got {cfg.text_encoder!r}, {cfg.text_dim})")
        rng = rng if rng is not None else torch.Generator().manual_seed(0)
        self.cfg = cfg
        self.mapping = MappingNetwork(cfg.mapping, cfg.text_dim, rng=rng)
        # The learned prior z is mapped onto before the mapping network (None: z ~ N(0, I) is used as drawn).
        self.prior = LatentPrior(cfg.mapping.z_dim) if cfg.mapping.latent_prior else None
        self.synthesis = TriplaneSynthesis(cfg.synthesis, cfg.mapping.w_dim, rng=rng)
        self.decoder = TriplaneDecoder(cfg.decoder, cfg.synthesis.plane_channels, rng=rng)
        self.superres = SuperResolution(
            cfg.superres,
            cfg.render.resolution,
            cfg.decoder.feature_channels,
            NUM_PLANES * cfg.synthesis.plane_channels,
            rng=rng,
        )
        self.renderer = VolumeRenderer(cfg.render.num_stratified, cfg.render.num_importance)
        if cfg.render.background not in BACKGROUNDS:
            raise ValueError(
                f"render.background must be one of {', '.join(BACKGROUNDS)}, got {cfg.render.background!r}"
            )
        if cfg.render.background == "learned":  # the colour empty space shows, learned; starts white
            self.background = nn.Parameter(torch.ones(RGB))

    # --- description -------------------------------------------------------------------------------------
    @property
    def config(self) -> GeneratorConfig:
        return self.cfg

    @property
    def text_encoder_name(self) -> str:
        return self.cfg.text_encoder

    @property
    def text_dim(self) -> int:
        return self.cfg.text_dim

    @property
    def device(self) -> torch.device:
        return self.synthesis.const.device

    # --- prompt -> tri-planes ------------------------------------------------------------------------------
    def sample_z(self, batch: int, rng: torch.Generator | None = None) -> torch.Tensor:
        """(batch, z_dim) standard normal latents on the module's device."""
        return torch.randn(batch, self.cfg.mapping.z_dim, generator=rng, device=self.device)

    def prior_z(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, z_dim) standard normal -> the latent the mapping network reads: z itself, or with a learned
        prior (`mapping.latent_prior`) its image under the prior's fit, mean + scale z."""
        return z if self.prior is None else self.prior(z)

    def default_mapping_camera(self, batch: int) -> torch.Tensor | None:
        """The camera label w is conditioned on at inference when the mapping is camera-conditioned: a front
        view at the middle of the teacher's elevations (EG3D conditions generation on a fixed pose too)."""
        if not self.cfg.mapping.camera_cond:
            return None
        label = self.cfg.camera.middle_orbit(1).eg3d_label()  # (1, 25)
        return label.to(self.device).expand(batch, -1)

    def mapping_w(self, text_emb: torch.Tensor, z: torch.Tensor, camera: torch.Tensor | None = None) -> torch.Tensor:
        """text_emb (B, D), z (B, z_dim) standard normal, camera (B, 25) or None (= the default) -> w (B, w_dim)."""
        if camera is None:
            camera = self.default_mapping_camera(z.shape[0])
        return self.mapping(self.prior_z(z), text_emb, camera)

    def planes(
        self,
        text_emb: torch.Tensor,
        z: torch.Tensor | None = None,
        rng: torch.Generator | None = None,
        truncation_psi: float = 1.0,
    ) -> torch.Tensor:
        """text_emb (B, D) -> tri-planes (B, 3, C, R, R) (XY, XZ, YZ). z (B, z_dim) or drawn from `generator`."""
        z = self.sample_z(text_emb.shape[0], rng) if z is None else z
        return self.synthesis(self.latent_w(text_emb, z, truncation_psi))

    def latent_w(self, text_emb: torch.Tensor, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        """text_emb (B, D), z (B, z_dim) -> w (B, w_dim), the synthesis input.

        truncation_psi < 1 moves w towards the mean w of the same prompt (over `mapping.truncation_samples`
        fixed latents): StyleGAN's truncation trick, made conditional so that it keeps the prompt.
        """
        b = text_emb.shape[0]
        assert text_emb.shape == (b, self.text_dim), (
            f"text_emb must be (B, {self.text_dim}), got {tuple(text_emb.shape)}"
        )
        w = self.mapping_w(text_emb, z)
        if truncation_psi != 1.0:
            k = self.cfg.mapping.truncation_samples
            # The same k fixed latents for every sample: the centre is a function of the prompt alone.
            zs = self.sample_z(k, torch.Generator(device=z.device).manual_seed(0)).repeat(b, 1)  # (B*k, z_dim)
            centre = self.mapping_w(text_emb.repeat_interleave(k, dim=0), zs).view(b, k, -1).mean(dim=1)  # (B, w_dim)
            w = centre + truncation_psi * (w - centre)
        return w

    # --- tri-planes -> density, colour, images -------------------------------------------------------------
    def field(self, planes: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """planes (B, 3, C, R, R), points (B, P, 3) -> sigma (B, P), features (B, P, F)."""
        return self.decoder.decode_planar(sample_triplane_planar(planes, points))

    def query(self, planes: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """planes (B, 3, C, R, R), points (B, P, 3) in world units -> sigma (B, P), rgb (B, P, 3) in [0, 1]."""
        sigma, features = self.field(planes, points)
        return sigma, features[..., :RGB].clamp(0, 1)

    def render_views(
        self,
        planes: torch.Tensor,
        c2w: torch.Tensor,
        fovy: torch.Tensor,
        raw_resolution: int | None = None,
        rng: torch.Generator | None = None,
        background: torch.Tensor | None = None,
    ) -> Rendering:
        """planes (B, 3, C, R, R), c2w (B, V, 4, 4), fovy (B, V) -> Rendering. rng jitters the samples
        (training); None renders deterministically (evaluation). background (B, V, 3) in [0, 1]: each view's
        colour behind the object, used with render.background = "shards" (default: render.background_rgb)."""
        b, v = fovy.shape
        assert planes.shape[:2] == (b, NUM_PLANES), f"planes {tuple(planes.shape)} for {b} samples"
        h = raw_resolution or self.cfg.render.resolution
        origins, dirs = camera_rays(c2w, fovy, h)  # (B, V*h*h, 3)
        bg = self.background_features(b, v, background)  # (B, V, F) or a float
        # The background colour of each image, (BV, 3, 1, 1) or a float, for the gate below.
        bg_rgb = bg[..., :RGB].reshape(b * v, RGB, 1, 1) if isinstance(bg, torch.Tensor) else bg
        if isinstance(bg, torch.Tensor):
            bg = bg.repeat_interleave(h * h, dim=1)  # (B, V*h*h, F), rays are view-major
        out = self.renderer(lambda p: self.field(planes, p), origins, dirs, rng, bg)
        feats = out.features.reshape(b * v, h, h, -1).permute(0, 3, 1, 2)  # (B, V*h*h, F) -> (BV, F, h, h)
        code = plane_code(planes).repeat_interleave(v, dim=0)  # (B, 3C) -> (BV, 3C)
        image = self.superres(feats, code)  # (BV, 3, H, H)
        size = image.shape[-1]
        gate_level = self.cfg.superres.background_gate
        if gate_level > 0:
            alpha = out.opacity.reshape(b * v, 1, h, h)
            alpha = F.interpolate(alpha, size=(size, size), mode="bilinear", align_corners=False)  # (BV, 1, H, H)
            gate = (alpha / gate_level).clamp(max=1)  # (BV, 1, H, H): 0 in empty space, 1 on the object
            image = gate * image + (1 - gate) * bg_rgb
        return Rendering(
            image=image.reshape(b, v, RGB, size, size),
            raw=feats[:, :RGB].reshape(b, v, RGB, h, h),
            opacity=out.opacity.reshape(b, v, h, h),
        )

    def background_features(self, b: int, v: int, background: torch.Tensor | None = None) -> torch.Tensor | float:
        """What empty space composites onto, per view: (B, V, F) with the RGB channels set by render.background
        and the other feature channels white, or the float 1.0 for "white"."""
        mode = self.cfg.render.background
        if mode == "white":
            return BACKGROUND
        if mode == "learned":
            rgb = self.background.expand(b, v, RGB)
        elif background is not None:
            assert background.shape == (b, v, RGB), f"background must be ({b}, {v}, 3), got {tuple(background.shape)}"
            rgb = background.to(self.device, torch.float32)
        else:
            rgb = torch.tensor(self.cfg.render.background_rgb, device=self.device).expand(b, v, RGB)
        rest = torch.full((b, v, self.cfg.decoder.feature_channels - RGB), BACKGROUND, device=rgb.device)
        return torch.cat([rgb, rest], dim=-1)  # (B, V, F)

    def render(
        self, planes: torch.Tensor, c2w: torch.Tensor, fovy: torch.Tensor, resolution: int | None = None
    ) -> torch.Tensor:
        """planes (B, 3, C, R, R), c2w (B, V, 4, 4), fovy (B, V) degrees -> final images (B, V, 3, H, W) in [0, 1].

        resolution: output side, a multiple of the super-resolution factor (default: the trained output size).
        Deterministic (no sample jitter).
        """
        factor = self.superres.factor
        if resolution is not None and (resolution < factor or resolution % factor):
            raise ValueError(
                f"resolution must be a positive multiple of the super-resolution factor {factor}, got {resolution}"
            )
        raw_res = None if resolution is None else resolution // factor
        return self.render_views(planes, c2w, fovy, raw_res).image.clamp(0, 1)

    @torch.no_grad()
    def render_uint8(
        self,
        planes: torch.Tensor,
        c2w: torch.Tensor,
        fovy: torch.Tensor,
        resolution: int | None = None,
        views_per_call: int | None = None,
    ) -> torch.Tensor:
        """planes (B, 3, C, R, R) -> (B, V, H, W, 3) uint8 images on the CPU (the teacher's layout), by `render`.

        c2w (B, V, 4, 4) and fovy (B, V) give each sample its own views; c2w (V, 4, 4) and fovy (V,) (one orbit,
        e.g. `config.camera.middle_orbit(...)`) are shared by all. `views_per_call` bounds memory for long orbits.
        """
        b = planes.shape[0]
        if c2w.ndim == 3:
            c2w, fovy = c2w[None].expand(b, -1, -1, -1), fovy[None].expand(b, -1)  # (V, ...) -> (B, V, ...)
        v = fovy.shape[1]
        step = views_per_call or v
        chunks = []
        for start in range(0, v, step):
            c2w_part = c2w[:, start : start + step].to(self.device)  # (B, v, 4, 4)
            fovy_part = fovy[:, start : start + step].to(self.device)  # (B, v)
            images = self.render(planes, c2w_part, fovy_part, resolution).float()  # fp32 under autocast too
            chunks.append(to_uint8(images).cpu())  # (B, v, 3, H, W)
        return torch.cat(chunks, dim=1).permute(0, 1, 3, 4, 2)  # (B, V, 3, H, W) -> (B, V, H, W, 3)

    # --- persistence ---------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `config.json` (schema version, generator config) and `model.safetensors`; returns the dir."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: t.detach().cpu().contiguous() for k, t in self.state_dict().items()}
        with atomic_path(directory / MODEL_WEIGHTS) as tmp:
            save_file(state, str(tmp))
        atomic_write_json(
            directory / MODEL_CONFIG,
            {"schema_version": SCHEMA_VERSION, "kind": MODEL_KIND, "generator": to_dict(self.cfg)},
        )
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: torch.device | str = "cpu") -> TriplaneGenerator:
        """Rebuild the generator saved by `save_pretrained` (in a training checkpoint: the EMA generator)."""
        directory = Path(directory)
        config_path, weights_path = directory / MODEL_CONFIG, directory / MODEL_WEIGHTS
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found: not a checkpoint directory (see find_latest_checkpoint)")
        meta = json.loads(config_path.read_text())
        if meta.get("kind") != MODEL_KIND or meta.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"{config_path}: kind {meta.get('kind')!r} schema {meta.get('schema_version')!r}; "
                f"this code reads kind {MODEL_KIND!r} schema {SCHEMA_VERSION}"
            )
        model = cls(from_dict(GeneratorConfig, meta["generator"], "generator"))
        model.load_state_dict(load_file(str(weights_path)))
        return model.to(device).eval()

"""Python API of one-pass text-to-3D: ``ET3D.from_pretrained(ckpt)("a red cube", seed=0).save("cube.ply")``.

A prompt is encoded by the text encoder the checkpoint was trained with, one generator forward pass
turns (text embedding, z) into tri-planes, and the mesh is extracted from the decoder's density on
first use. Nothing here imports the teacher side (diffusers, Ray, `teacher_dump`): generation needs the
checkpoint alone (docs/design.md §Stages).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from pipeline.cameras import BOX_HALF
from student.generate.errors import (
    CheckpointError,
    EmptyMeshError,
    OptionError,
    PromptOutOfReachWarning,
    PromptTruncatedWarning,
)
from student.generate.loading import (
    check_text_encoder,
    load_generator,
    load_matching_text_encoder,
    resolve_checkpoint,
    resolve_device,
)
from student.generate.preview import image_grid, save_gif, save_image
from student.generate.prompts import check_far_prompts, validate_prompts
from student.generate.reach import TrainingReach
from student.mesh.config import MeshConfig, default_sigma_level
from student.mesh.decimate import MIN_FACES
from student.mesh.export import save_mesh
from student.mesh.extract import mesh_from_field
from student.mesh.marching_cubes import EmptySurfaceError
from student.mesh.mesh import Mesh
from student.mesh.texture import MAX_TEXTURE, MIN_TEXTURE
from student.model.generator import TriplaneGenerator
from student.model.packed_synthesis import PackedSynthesis
from student.precision import PRECISIONS, autocast
from student.run_layout import CheckpointLayoutError, load_training_prompts


@dataclass(frozen=True)
class PlanesField:
    """One sample's tri-planes seen through the generator's decoder, as a `DensityField` for meshing."""

    generator: TriplaneGenerator
    planes: torch.Tensor  # (1, 3, C, R, R)
    precision: str = "fp32"  # of the decoder's forward pass

    def query(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points (P, 3) -> sigma (P,), rgb (P, 3), fp32 on the CPU."""
        with autocast(self.precision, self.planes.device):
            sigma, rgb = self.generator.query(self.planes, points.to(self.planes.device)[None])  # (1, P), (1, P, 3)
        return sigma[0].float().cpu(), rgb[0].float().cpu()


class Generation:
    """One generated asset: its prompt, seed and tri-planes; the mesh is extracted on first access."""

    def __init__(self, model: ET3D, prompt: str, seed: int, planes: torch.Tensor):
        assert planes.ndim == 5 and planes.shape[:2] == (1, 3), f"planes must be (1, 3, C, R, R), got {planes.shape}"
        self.model = model
        self.prompt = prompt
        self.seed = seed
        self.planes = planes  # (1, 3, C, R, R)

    def __repr__(self) -> str:
        return f"Generation(prompt={self.prompt!r}, seed={self.seed}, planes={tuple(self.planes.shape)})"

    @property
    def field(self) -> PlanesField:
        return PlanesField(self.model.generator, self.planes, self.model.precision)

    @cached_property
    def mesh(self) -> Mesh:
        """The coloured surface in world units with the model's face budget and texture; see `extract_mesh`."""
        return self.extract_mesh(self.model.max_faces, self.model.texture_size)

    def extract_mesh(self, max_faces: int | None = None, texture_size: int | None = None) -> Mesh:
        """A new mesh of this sample (not cached); EmptyMeshError when the density has no surface."""
        try:
            return mesh_from_field(self.field, self.model.mesh_config, max_faces, texture_size)
        except EmptySurfaceError as e:
            raise EmptyMeshError(f"{self.prompt!r} (seed {self.seed}): {e}") from e

    def save(self, path: str | Path) -> Path:
        """Write the mesh in the format of the suffix (.ply, .glb, .obj); returns the path written.

        With a texture, .glb embeds it and .obj writes NAME.mtl and NAME_texture.png beside it.
        """
        return save_mesh(self.mesh, path)

    def views(self, num_views: int | None = None, azimuth_start_deg: float = 0.0) -> np.ndarray:
        """(V, H, W, 3) uint8 student renders around the object (default: the training view count)."""
        G = self.model.generator
        cams = G.config.camera.middle_orbit(num_views or G.config.camera.num_views, azimuth_start_deg)
        with autocast(self.model.precision, self.planes.device):
            return G.render_uint8(self.planes, cams.c2w, cams.fovy_deg, views_per_call=8)[0].numpy()  # (V, H, W, 3)

    def preview(self, path: str | Path, num_views: int | None = None) -> Path:
        """A grid image of `views`; returns the path written."""
        return save_image(image_grid(self.views(num_views)), path)

    def turntable(self, path: str | Path, frames: int = 36, fps: float = 12.0) -> Path:
        """A looping GIF orbiting the object once; returns the path written."""
        return save_gif(self.views(frames), path, fps)


class ET3D:
    """A trained generator with its text encoder and meshing settings."""

    def __init__(
        self,
        generator: TriplaneGenerator,
        text_encoder,
        mesh_config: MeshConfig | None = None,
        max_faces: int | None = None,
        texture_size: int | None = None,
        precision: str = "fp32",
        reach: TrainingReach | None = None,
        far_prompts: str = "warn",
    ):
        """max_faces: decimate meshes by quadric error to at most this many faces (None = keep all).
        texture_size: bake the colour field into a texture this many pixels square (None = vertex colours).
        precision: fp32 (the reference), bf16 or fp16: autocast of the generator's forward passes (tri-planes,
        decoder queries, renders); weights stay fp32 and tri-planes are returned in fp32.
        reach: the checkpoint's training prompts, to warn about prompts far from all of them (None: no check).
        far_prompts: what a far prompt generates: "warn" (itself, after the warning) or "nearest" (its nearest
        training prompt's recorded embedding instead, so the generator sees a prompt it was trained on; needs reach).
        """
        if precision not in PRECISIONS:
            raise OptionError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        check_far_prompts(far_prompts)
        if far_prompts == "nearest" and reach is None:
            raise OptionError("far_prompts='nearest' needs the training prompts (reach); there are none to snap to")
        check_text_encoder(generator, text_encoder, "<in memory>")
        if max_faces is not None and max_faces < MIN_FACES:
            raise OptionError(f"max_faces must be >= {MIN_FACES}, got {max_faces}")
        if texture_size is not None and not MIN_TEXTURE <= texture_size <= MAX_TEXTURE:
            raise OptionError(f"texture size must be in [{MIN_TEXTURE}, {MAX_TEXTURE}] pixels, got {texture_size}")
        self.precision = precision
        self.reach = reach
        self.far_prompts = far_prompts
        self.generator = generator.eval()
        # The generator's own synthesis is the reference; this packing of it is ~2x faster at batch 1.
        self.synthesis = PackedSynthesis(generator.synthesis)
        self.text_encoder = text_encoder
        self.max_faces = max_faces
        self.texture_size = texture_size
        self.mesh_config = generation_mesh_config(generator, mesh_config)

    @classmethod
    def from_pretrained(
        cls,
        ckpt: str | Path | None = None,
        *,
        text_encoder_path: str | None = None,
        text_precision: str = "auto",
        mesh_config: MeshConfig | None = None,
        max_faces: int | None = None,
        texture_size: int | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        far_prompts: str = "warn",
    ) -> ET3D:
        """Load a checkpoint folder (default: the newest under runs/train) and its text encoder.

        text_precision: "auto" (the encoder's fastest: bf16 weights for minilm) or "fp32" (exact).
        device: "cpu", "cuda[:N]" or "auto"; meshes, images and returned tensors other than planes are on the CPU.
        precision: "fp32", "bf16" or "fp16" for the generator's forward passes (bf16/fp16 pay off on GPUs).
        far_prompts: "warn" (warn about a prompt far from every training prompt, then generate it) or "nearest"
        (warn, then generate its nearest training prompt instead); "nearest" needs a checkpoint that records them.
        """
        if precision not in PRECISIONS:
            raise OptionError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        check_far_prompts(far_prompts)
        folder = resolve_checkpoint(ckpt)
        torch_device = resolve_device(device)
        try:
            training = load_training_prompts(folder)  # None for checkpoints written before they were recorded
        except CheckpointLayoutError as e:
            raise CheckpointError(str(e)) from None
        if training is None and far_prompts == "nearest":  # before any loading: a one-line answer at once
            raise CheckpointError(
                f"{folder} records no training prompts (written before they were recorded), so far_prompts='nearest' "
                "has nothing to snap to; use 'warn'"
            )
        generator = load_generator(folder, torch_device)
        encoder = load_matching_text_encoder(generator, folder, text_encoder_path, text_precision, torch_device)
        reach = TrainingReach(training) if training is not None else None
        return cls(generator, encoder, mesh_config, max_faces, texture_size, precision, reach, far_prompts)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def synchronize(self) -> None:
        """Wait for queued GPU work (a no-op on the CPU): for timing."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Validated prompts -> pooled text embeddings (B, D); warns about prompts the encoder truncates and
        prompts far from everything the checkpoint was trained on. With far_prompts="nearest", a far prompt's row is
        its nearest training prompt's recorded embedding; the other rows are the encoder's, untouched."""
        validate_prompts(prompts)
        for message in self.text_encoder.check_prompts(prompts):
            warnings.warn(message, PromptTruncatedWarning, stacklevel=2)
        with torch.inference_mode():
            pooled = self.text_encoder.encode(prompts).pooled  # (B, D)
        assert pooled.shape == (len(prompts), self.generator.text_dim), f"pooled {tuple(pooled.shape)}"
        if self.reach is not None:
            snap = self.far_prompts == "nearest"
            reaches = self.reach.check(prompts, pooled)
            for reach in reaches:
                if reach.far:
                    warnings.warn(reach.message(snapped=snap), PromptOutOfReachWarning, stacklevel=2)
            if snap:
                pooled = self.reach.snap(pooled, reaches)  # (B, D)
        return pooled

    def synthesize(
        self, embeddings: torch.Tensor, labels: list[str], seeds: list[int], truncation_psi: float = 1.0
    ) -> list[Generation]:
        """One forward pass per (embedding (D,), seed): text embeddings (B, D) -> B generations.

        Each sample draws z from its own torch.Generator seeded with its seed, so a seed gives the same asset
        whatever else is generated in the same call; z is drawn on the CPU, so also whatever the device.
        """
        if not (len(embeddings) == len(labels) == len(seeds)):
            raise ValueError(f"got {len(embeddings)} embeddings, {len(labels)} labels, {len(seeds)} seeds")
        device = self.device
        out = []
        with torch.inference_mode(), autocast(self.precision, device):
            for emb, label, seed in zip(embeddings, labels, seeds, strict=True):
                rng = torch.Generator().manual_seed(seed)
                z = torch.randn(1, self.generator.config.mapping.z_dim, generator=rng).to(device)  # (1, z_dim)
                w = self.generator.latent_w(emb[None].to(device), z, truncation_psi)  # (1, w_dim)
                planes = self.synthesis(w).float()
                out.append(Generation(self, label, seed, planes))  # planes (1, 3, C, R, R)
        return out

    def generate(self, prompts: list[str], seeds: list[int], truncation_psi: float = 1.0) -> list[Generation]:
        """prompts[i] with seeds[i], for every i."""
        return self.synthesize(self.encode(prompts), prompts, seeds, truncation_psi)

    def __call__(self, prompt: str, seed: int = 0, truncation_psi: float = 1.0) -> Generation:
        return self.generate([prompt], [seed], truncation_psi)[0]

    def interpolate(
        self, prompt_a: str, prompt_b: str, steps: int, seed: int = 0, truncation_psi: float = 1.0
    ) -> list[Generation]:
        """``steps`` generations from prompt_a to prompt_b with one z, as the paper's interpolations."""
        a, b = self.encode([prompt_a, prompt_b])  # (D,), (D,)
        labels = [f"{prompt_a} -> {prompt_b} @ {t:.2f}" for t in torch.linspace(0, 1, steps).tolist()]
        return self.synthesize(embedding_path(a, b, steps), labels, [seed] * steps, truncation_psi)


def embedding_path(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` embeddings from a (D,) to b (D,), both included: (steps, D)."""
    if steps < 2:
        raise OptionError(f"steps must be >= 2 for an interpolation, got {steps}")
    return torch.stack([interpolate_embeddings(a, b, t) for t in torch.linspace(0, 1, steps).tolist()])


def generation_mesh_config(generator: TriplaneGenerator, mesh_config: MeshConfig | None = None) -> MeshConfig:
    """``mesh_config`` (default: `MeshConfig()`) with an unset level resolved for this generator.

    The default level is where one stratified render sample (a box edge split ``num_stratified`` ways) is
    half opaque (`default_sigma_level`), so the mesh surface is where the student's own images show it.
    """
    mesh_config = mesh_config or MeshConfig()
    if mesh_config.sigma_level is not None:
        return mesh_config
    spacing = 2 * BOX_HALF / generator.config.render.num_stratified
    return replace(mesh_config, sigma_level=default_sigma_level(spacing))


def interpolate_embeddings(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of the direction with a linear one of the norm: (D,), (D,) -> (D,).

    Sentence embeddings such as minilm's are unit vectors; a straight lerp cuts through the sphere and
    its midpoints are shorter than anything the generator saw in training. Slerping the direction stays
    on it, and interpolating the norm keeps encoders with unnormalised outputs (clip) consistent too.
    """
    na, nb = a.norm(), b.norm()
    ua, ub = a / na, b / nb
    omega = torch.arccos((ua * ub).sum().clamp(-1.0, 1.0))
    if float(omega) < 1e-4:  # (nearly) the same direction: slerp's weights are 0/0
        direction = (1 - t) * ua + t * ub
    else:
        direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / torch.sin(omega)
    return direction / direction.norm() * ((1 - t) * na + t * nb)

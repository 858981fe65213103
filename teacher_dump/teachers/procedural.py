"""The embedded default teacher: procedural scenes (`pipeline.procedural`) rendered from MVDream-layout
orbits, V views 360/V degrees apart at one elevation, on white.

Each (prompt, seed) gets its own generator, seeded from the prompt's id and the seed, for the orbit
(elevation and azimuth start); the scene's yaw, scale and shade come from `sample_scene`. Output is
therefore deterministic in (prompt, seed) and independent of how samples are batched.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np
import torch

from pipeline.cameras import DEFAULT_FOVY_DEG, DEFAULT_RADIUS, OrbitSampler
from pipeline.procedural import PromptError, parse_prompt, render_scene, sample_scene
from pipeline.prompts import prompt_id
from teacher_dump.teachers.base import Teacher, TeacherOutput, register_teacher


@dataclass(frozen=True)
class ProceduralTeacherConfig:
    num_views: int = 4
    resolution: int = 64
    supersample: int = 2  # anti-aliasing: supersample^2 rays per pixel
    elevation_min: float = 0.0  # MVDream's training orbits: elevation in [0, 30) degrees
    elevation_max: float = 30.0
    # Azimuth of each orbit's first view, drawn in [azimuth_min, azimuth_max). The full circle confounds the
    # scene's yaw with the camera: a cube turned 30 degrees, seen from azimuth a, is the unturned cube seen
    # from a + 30. A fixed start (min == max, as MVDream samples) makes yaw visible in every view.
    azimuth_min: float = 0.0
    azimuth_max: float = 360.0
    radius: float = DEFAULT_RADIUS
    fovy_deg: float = DEFAULT_FOVY_DEG

    def __post_init__(self) -> None:
        if min(self.num_views, self.resolution, self.supersample) < 1:
            raise ValueError(f"num_views, resolution and supersample must be >= 1, got {self}")
        if not 0 <= self.elevation_min <= self.elevation_max < 90:
            raise ValueError(f"need 0 <= elevation_min <= elevation_max < 90, got {self}")
        if not 0 <= self.azimuth_min <= self.azimuth_max <= 360:
            raise ValueError(f"need 0 <= azimuth_min <= azimuth_max <= 360, got {self}")


def orbit_seed(prompt: str, seed: int) -> int:
    """63-bit generator seed for the orbit of one (prompt, seed)."""
    blob = f"orbit|{prompt_id(prompt)}|{seed}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") >> 1


@register_teacher("procedural")
class ProceduralTeacher(Teacher):
    uses_gpu = False

    def __init__(self, **options: object):
        """Options are the fields of `ProceduralTeacherConfig`; unknown names raise TypeError."""
        self.cfg = ProceduralTeacherConfig(**options)
        self.sampler = OrbitSampler(
            num_views=self.cfg.num_views,
            elevation_range=(self.cfg.elevation_min, self.cfg.elevation_max),
            azimuth_start_range=(self.cfg.azimuth_min, self.cfg.azimuth_max),
            radius=self.cfg.radius,
            fovy_deg=self.cfg.fovy_deg,
            resolution=self.cfg.resolution,
        )

    def config(self) -> dict:
        return asdict(self.cfg)

    def camera_distribution(self) -> dict:
        c = self.cfg
        return {
            "elevation_range": [c.elevation_min, c.elevation_max],
            "azimuth_start_range": [c.azimuth_min, c.azimuth_max],
            "radius": c.radius,
            "fovy_deg": c.fovy_deg,
        }

    def validate_prompts(self, prompts: list[str]) -> None:
        problems = []
        for p in prompts:
            try:
                parse_prompt(p)
            except PromptError as e:
                problems.append(str(e))
        if problems:
            listing = "\n".join(f"  {m}" for m in problems)
            raise ValueError(f"{len(problems)} prompt(s) outside the procedural vocabulary:\n{listing}")

    def generate(self, prompts: list[str], seeds: list[int]) -> TeacherOutput:
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        views, cameras, fovy = [], [], []
        for prompt, seed in zip(prompts, seeds, strict=True):
            scene = sample_scene(parse_prompt(prompt), seed)
            cams, _, _ = self.sampler.sample(torch.Generator().manual_seed(orbit_seed(prompt, seed)))
            views.append(render_scene(scene, cams, self.cfg.supersample).numpy())  # (V, H, W, 3)
            cameras.append(cams.c2w.numpy())
            fovy.append(cams.fovy_deg.numpy())
        return TeacherOutput(
            views=np.stack(views), cameras=np.stack(cameras).astype(np.float32), fovy=np.stack(fovy).astype(np.float32)
        )

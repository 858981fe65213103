"""Per-prompt diversity: how much renders of one prompt differ across z, against the teacher's own seeds.

For each prompt, S student samples (S latents) and S teacher samples (procedural seeds 0..S-1) are rendered at
the same cameras; the diversity of a set is the mean absolute pixel difference over all pairs. The ratio
student / teacher is 1 when z varies a prompt as much as the teacher's seeds do (yaw, scale, shade) and near
0 under mode collapse (DESIGN §6 measured 0.36 for a D that saw no camera).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.cameras import Cameras, orbit_cameras
from pipeline.procedural import parse_prompt, render_scene, sample_scene
from student.eval.oracle_accuracy import EVAL_SEED, to_uint8_views
from student.model.generator import TriplaneGenerator


@dataclass(frozen=True)
class DiversityConfig:
    train_prompts: int = 8  # training prompts measured (spread over the list)
    heldout_prompts: int = 8  # held-out prompts measured
    seeds: int = 4  # samples per prompt, student and teacher alike (>= 2)
    views: int = 4  # views per sample, one orbit at the middle of the training elevations
    azimuth_start_deg: float = 30.0  # away from the faces-on view, where a cube's yaw shows least
    seed: int = EVAL_SEED  # the student's latents

    def __post_init__(self) -> None:
        prompts = (self.train_prompts, self.heldout_prompts)
        if self.seeds < 2 or self.views < 1 or min(prompts) < 0 or sum(prompts) < 1:
            raise ValueError(
                f"need seeds >= 2, views >= 1 and prompts >= 0, at least one in all; got seeds {self.seeds}, "
                f"views {self.views}, prompts {self.train_prompts} train / {self.heldout_prompts} held-out"
            )


@dataclass(frozen=True)
class DiversityResult:
    prompts: tuple[str, ...]  # (P,)
    student: tuple[float, ...]  # (P,) mean pairwise distance of the student's samples of each prompt
    teacher: tuple[float, ...]  # (P,) the same for the teacher's seeds
    student_views: np.ndarray  # (P, S, V, H, W, 3) uint8
    teacher_views: np.ndarray  # (P, S, V, H, W, 3) uint8

    @property
    def student_mean(self) -> float:
        return float(np.mean(self.student))

    @property
    def teacher_mean(self) -> float:
        return float(np.mean(self.teacher))

    @property
    def ratio(self) -> float | None:
        """student / teacher mean; None when the teacher's samples do not differ at all."""
        return self.student_mean / self.teacher_mean if self.teacher_mean > 0 else None

    def to_json(self) -> dict:
        per_prompt = {
            p: {"student": s, "teacher": t, "ratio": s / t if t > 0 else None}
            for p, s, t in zip(self.prompts, self.student, self.teacher, strict=True)
        }
        return {
            "per_prompt": per_prompt,
            "student_mean": self.student_mean,
            "teacher_mean": self.teacher_mean,
            "ratio": self.ratio,
            "seeds": int(self.student_views.shape[1]),
        }


def mean_pairwise_distance(images: torch.Tensor | np.ndarray) -> float:
    """(N, ...) uint8 images (N >= 2) -> mean over the N (N - 1) / 2 pairs of the mean |a - b| / 255, in [0, 1]."""
    x = torch.as_tensor(images)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"need (N, ...) images with N >= 2, got shape {tuple(x.shape)}")
    flat = x.reshape(x.shape[0], -1).float() / 255.0  # (N, M)
    n = flat.shape[0]
    pairs = torch.triu_indices(n, n, offset=1)  # (2, N (N - 1) / 2)
    return float((flat[pairs[0]] - flat[pairs[1]]).abs().mean())


def diversity_cameras(G: TriplaneGenerator, config: DiversityConfig) -> Cameras:
    """One orbit of `config.views` cameras at the middle of the training elevations, at G's output size."""
    cam = G.config.camera
    return orbit_cameras(
        config.views, sum(cam.elevation_range) / 2, config.azimuth_start_deg, radius=cam.radius,
        fovy_deg=cam.fovy_deg, resolution=G.config.superres.output_resolution,
    )  # fmt: skip


@torch.no_grad()
def evaluate_diversity(
    G: TriplaneGenerator,
    prompts: list[str],
    emb: torch.Tensor,
    config: DiversityConfig = DiversityConfig(),
    progress: Callable[[int], None] | None = None,
) -> DiversityResult:
    """Procedural prompts (P,) with embeddings (P, D) -> student and teacher diversity of each prompt."""
    if emb.shape[0] != len(prompts) or not prompts:
        raise ValueError(f"{emb.shape[0]} embeddings for {len(prompts)} prompts: need equal, >= 1")
    cams = diversity_cameras(G, config)
    s, device = config.seeds, G.device
    c2w = cams.c2w[None].expand(s, -1, -1, -1).to(device)  # (S, V, 4, 4)
    fovy = cams.fovy_deg[None].expand(s, -1).to(device)  # (S, V)
    g = torch.Generator().manual_seed(config.seed)
    was_training = G.training
    G.eval()
    student, teacher = [], []
    try:
        for i, prompt in enumerate(prompts):
            z = torch.randn(s, G.config.mapping.z_dim, generator=g).to(device)
            planes = G.planes(emb[i : i + 1].float().to(device).expand(s, -1), z)
            student.append(to_uint8_views(G.render(planes, c2w, fovy, cams.resolution)).cpu().numpy())
            spec = parse_prompt(prompt)
            teacher.append(np.stack([render_scene(sample_scene(spec, seed), cams).numpy() for seed in range(s)]))
            if progress is not None:
                progress(1)
    finally:
        G.train(was_training)
    return DiversityResult(
        prompts=tuple(prompts),
        student=tuple(mean_pairwise_distance(v) for v in student),
        teacher=tuple(mean_pairwise_distance(v) for v in teacher),
        student_views=np.stack(student),
        teacher_views=np.stack(teacher),
    )

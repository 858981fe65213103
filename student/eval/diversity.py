"""Per-prompt diversity: how much a prompt's samples differ across z, against the teacher's own seeds.

The procedural teacher varies three factors per seed (`pipeline/procedural/scene.py`): yaw, scale and shade.
For each prompt, S student samples (S latents) and S teacher samples (seeds 0..S-1) are rendered at the same
cameras, and each factor is fitted from every render by the attribute oracle (`fit_pose`, `brightness`). A
factor's spread is measured the same way on both sides, so the estimator's own error cancels in the ratio:

- yaw: circular variance 1 - R of the yaw on the shape's symmetry circle (a cube at 10 and 100 degrees is
  one pose); not defined for shapes symmetric under every yaw (sphere, cylinder, cone, torus);
- scale: standard deviation of the fitted scale;
- shade: standard deviation of the foreground's median brightest channel.

The image-L1 spread (mean absolute pixel difference over all pairs) is kept beside them. It rewards any
difference, noise included: a student that adds pixel noise to one fixed pose scores a high image-L1
ratio but factor ratios near 0, because its fitted yaw, scale and brightness do not move
(`tests/test_eval_diversity.py`). Ratios student / teacher are 1 when z varies a prompt as the teacher's seeds
do, near 0 under mode collapse.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.cameras import Cameras
from pipeline.procedural import AttributeOracle, parse_prompt, render_scene, sample_scene
from pipeline.procedural.shapes import SHAPE_GEOMETRY
from student.eval.oracle_accuracy import EVAL_SEED
from student.model.generator import TriplaneGenerator

FACTORS = ("yaw", "scale", "shade", "image_l1")


@dataclass(frozen=True)
class DiversityConfig:
    train_prompts: int = 6  # training prompts measured, one per shape first (`cover_shapes`)
    heldout_prompts: int = 6  # held-out prompts measured, likewise
    seeds: int = 16  # samples per prompt, student and teacher alike (>= 2)
    views: int = 2  # views per sample, `view_step_deg` apart at the middle of the training elevations
    view_step_deg: float = 45.0  # 90 (or 180) would show a cube's or pyramid's silhouette twice
    azimuth_start_deg: float = 30.0  # away from the faces-on view, where a cube's yaw shows least
    yaw_steps: int = 18  # yaw grid of the pose fit per symmetry period (5 degrees for a cube)
    seed: int = EVAL_SEED  # the student's latents

    def __post_init__(self) -> None:
        prompts = (self.train_prompts, self.heldout_prompts)
        if self.seeds < 2 or self.views < 1 or min(prompts) < 0 or sum(prompts) < 1 or self.yaw_steps < 1:
            raise ValueError(
                f"need seeds >= 2, views >= 1, yaw_steps >= 1 and prompts >= 0, at least one in all; got seeds "
                f"{self.seeds}, views {self.views}, yaw_steps {self.yaw_steps}, prompts {self.train_prompts} "
                f"train / {self.heldout_prompts} held-out"
            )


def cover_shapes(prompts: Sequence[str], n: int) -> list[str]:
    """Up to n procedural prompts, one of each shape first (in list order), then the rest in list order."""
    shapes_seen: set[str] = set()
    first, rest = [], []
    for p in prompts:
        shape = parse_prompt(p).shape
        (rest if shape in shapes_seen else first).append(p)
        shapes_seen.add(shape)
    return (first + rest)[:n]


def mean_pairwise_distance(images: torch.Tensor | np.ndarray) -> float:
    """(N, ...) uint8 images (N >= 2) -> mean over the N (N - 1) / 2 pairs of the mean |a - b| / 255, in [0, 1]."""
    x = torch.as_tensor(images)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"need (N, ...) images with N >= 2, got shape {tuple(x.shape)}")
    flat = x.reshape(x.shape[0], -1).float() / 255.0  # (N, M)
    n = flat.shape[0]
    pairs = torch.triu_indices(n, n, offset=1)  # (2, N (N - 1) / 2)
    return float((flat[pairs[0]] - flat[pairs[1]]).abs().mean())


def circular_variance(angles_deg: torch.Tensor, period_deg: float) -> float:
    """1 - |mean of exp(2 pi i angle / period)| in [0, 1]: 0 when all angles agree modulo the period."""
    a = angles_deg.double() * (2 * math.pi / period_deg)
    return float(1.0 - torch.hypot(torch.cos(a).mean(), torch.sin(a).mean()))


def _std(x: torch.Tensor) -> float | None:
    x = x[~x.isnan()].double()
    return float(x.std(unbiased=False)) if x.numel() >= 2 else None


def factor_spreads(
    views: torch.Tensor | np.ndarray, cams: Cameras, shape: str, oracle: AttributeOracle, yaw_steps: int = 18
) -> dict[str, float | None]:
    """(S, V, H, W, 3) uint8 samples of one prompt at `cams` (V) -> spread of each factor in `FACTORS`.

    yaw is None for shapes symmetric under every yaw; scale and shade are None when fewer than 2 samples show
    any foreground.
    """
    views = torch.as_tensor(views)
    s = views.shape[0]
    c2w = cams.c2w[None].expand(s, -1, -1, -1)  # (S, V, 4, 4)
    fovy = cams.fovy_deg[None].expand(s, -1)  # (S, V)
    visible = oracle.foreground(views).flatten(1).any(dim=1)  # (S,)
    fit = oracle.fit_pose(views, c2w, fovy, shape, yaw_steps)
    period = SHAPE_GEOMETRY[shape].yaw_period_deg
    scale = torch.where(visible, fit.scale, torch.nan)
    yaw_ok = period > 0 and int(visible.sum()) >= 2
    return {
        "yaw": circular_variance(fit.yaw_deg[visible], period) if yaw_ok else None,
        "scale": _std(scale),
        "shade": _std(oracle.brightness(views)),
        "image_l1": mean_pairwise_distance(views),
    }


def _ratio(student: float | None, teacher: float | None) -> float | None:
    return student / teacher if student is not None and teacher is not None and teacher > 0 else None


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


@dataclass(frozen=True)
class DiversityResult:
    prompts: tuple[str, ...]  # (P,)
    shapes: tuple[str, ...]  # (P,) the shape each prompt asks for
    teacher: tuple[dict[str, float | None], ...]  # (P,) factor -> spread over the teacher's seeds
    student: dict[str, tuple[dict[str, float | None], ...]]  # generator name -> (P,) factor -> spread over z
    teacher_views: np.ndarray  # (P, S, V, H, W, 3) uint8
    student_views: dict[str, np.ndarray]  # generator name -> (P, S, V, H, W, 3) uint8

    def _compare(self, name: str, indices: list[int]) -> dict[str, dict[str, float | None]]:
        """factor -> {student, teacher, ratio}: mean spreads over the prompts `indices`, and their ratio."""
        out = {}
        for f in FACTORS:
            s = _mean([self.student[name][i][f] for i in indices])
            t = _mean([self.teacher[i][f] for i in indices])
            out[f] = {"student": s, "teacher": t, "ratio": _ratio(s, t)}
        return out

    def summary(self, name: str) -> dict:
        """Everything about one generator: overall ratios, per shape and per prompt."""
        by_shape: dict[str, list[int]] = {}
        for i, shape in enumerate(self.shapes):
            by_shape.setdefault(shape, []).append(i)
        per_shape = {shape: self._compare(name, idx) for shape, idx in by_shape.items()}
        overall = self._compare(name, list(range(len(self.prompts))))
        factor_ratios = [
            per_shape[shape][f]["ratio"]
            for shape in per_shape
            for f in FACTORS[:3]
            if per_shape[shape][f]["ratio"] is not None
        ]
        return {
            "ratios": {f: overall[f]["ratio"] for f in FACTORS},
            "overall": overall,
            "min_factor_ratio": min(factor_ratios) if factor_ratios else None,
            "per_shape": per_shape,
            "per_prompt": {p: self._compare(name, [i]) for i, p in enumerate(self.prompts)},
        }

    def to_json(self) -> dict:
        generators = {name: self.summary(name) for name in self.student}
        main = next(iter(generators.values()))
        return {
            "seeds": int(self.teacher_views.shape[1]),
            "views": int(self.teacher_views.shape[2]),
            "prompts": list(self.prompts),
            "factors": list(FACTORS),
            "generators": generators,
            # The first generator's (G_ema's) image-L1 numbers, under the keys earlier reports used.
            "ratio": main["ratios"]["image_l1"],
            "student_mean": main["overall"]["image_l1"]["student"],
            "teacher_mean": main["overall"]["image_l1"]["teacher"],
        }


def diversity_cameras(G: TriplaneGenerator, config: DiversityConfig) -> Cameras:
    """`config.views` cameras `view_step_deg` apart at the middle of the training elevations, at G's output size."""
    return G.config.camera.middle_orbit(
        config.views, config.azimuth_start_deg, azimuth_step_deg=config.view_step_deg,
        resolution=G.config.superres.output_resolution,
    )  # fmt: skip


@torch.no_grad()
def render_student(G: TriplaneGenerator, emb: torch.Tensor, z: torch.Tensor, cams: Cameras) -> np.ndarray:
    """(S, D) embeddings and (S, z_dim) latents -> (S, V, H, W, 3) uint8 renders at `cams` (V), G in eval mode."""
    device = G.device
    was_training = G.training
    G.eval()
    try:
        planes = G.planes(emb.float().to(device), z.to(device))
        return G.render_uint8(planes, cams.c2w, cams.fovy_deg, cams.resolution).numpy()
    finally:
        G.train(was_training)


def evaluate_diversity(
    generators: dict[str, TriplaneGenerator],
    prompts: list[str],
    emb: torch.Tensor,
    config: DiversityConfig = DiversityConfig(),
    progress: Callable[[int], None] | None = None,
) -> DiversityResult:
    """Procedural prompts (P,) with embeddings (P, D) -> factor spreads of each generator and the teacher.

    Every generator sees the same latents and cameras; `progress` is called once per prompt.
    """
    if emb.shape[0] != len(prompts) or not prompts or not generators:
        raise ValueError(f"{emb.shape[0]} embeddings for {len(prompts)} prompts, {len(generators)} generators")
    first = next(iter(generators.values()))
    cams = diversity_cameras(first, config)
    s = config.seeds
    oracle = AttributeOracle()
    rng = torch.Generator().manual_seed(config.seed)
    teacher, teacher_views, shapes = [], [], []
    student: dict[str, list] = {name: [] for name in generators}
    student_views: dict[str, list] = {name: [] for name in generators}
    for i, prompt in enumerate(prompts):
        spec = parse_prompt(prompt)
        shapes.append(spec.shape)
        z = torch.randn(s, first.config.mapping.z_dim, generator=rng)  # (S, z_dim)
        for name, G in generators.items():
            views = render_student(G, emb[i : i + 1].expand(s, -1), z, cams)
            student[name].append(factor_spreads(views, cams, spec.shape, oracle, config.yaw_steps))
            student_views[name].append(views)
        views = np.stack([render_scene(sample_scene(spec, seed), cams).numpy() for seed in range(s)])
        teacher.append(factor_spreads(views, cams, spec.shape, oracle, config.yaw_steps))
        teacher_views.append(views)
        if progress is not None:
            progress(1)
    return DiversityResult(
        prompts=tuple(prompts),
        shapes=tuple(shapes),
        teacher=tuple(teacher),
        student={name: tuple(v) for name, v in student.items()},
        teacher_views=np.stack(teacher_views),
        student_views={name: np.stack(v) for name, v in student_views.items()},
    )

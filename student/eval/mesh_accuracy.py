"""Geometric accuracy of the student's meshes: Chamfer distance to the ground-truth shape, best over yaw.

A sample's mesh is extracted as `et3d-gen` extracts it (density level from the renderer's sample spacing,
`generation_mesh_config`) and compared with the *reference* mesh of its prompt: the procedural shape at yaw 0,
the prompt's size and the middle of the teacher's scale jitter. Two baselines computed from ground truth alone
put the number in context:

- ground truth vs ground truth: teacher samples (seeds 0..gt_seeds-1: own yaw and scale) against the
  reference, i.e. what a perfect student, one that draws from the teacher's distribution, scores;
- wrong shape: the references of the other shapes at the same size against the reference, i.e. what a
  student that gets the shape wrong scores.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch

from pipeline.procedural import SHAPES, Scene, SceneSpec, parse_prompt, sample_scene, scene_mesh
from pipeline.procedural.scene import DEFAULT_VARIATION
from pipeline.procedural.shapes import SHAPE_GEOMETRY
from student.eval.attributes import subset
from student.eval.chamfer import ChamferConfig, mesh_chamfer
from student.eval.oracle_accuracy import EvalSet, spread
from student.generate.api import PlanesField, generation_mesh_config
from student.mesh.config import MeshConfig
from student.mesh.marching_cubes import EmptySurfaceError, extract_surface
from student.model.generator import TriplaneGenerator

Mesh = tuple[np.ndarray, np.ndarray]  # vertices (N, 3) float32 world units, faces (F, 3) int


@dataclass(frozen=True)
class GeometryConfig:
    prompts: int = 8  # prompts per evaluation set meshed (spread over the set)
    seeds: int = 1  # samples per prompt meshed (the eval set's first latents)
    mesh_grid: int = 64  # marching-cubes cells per axis for the student's meshes
    gt_grid: int = 64  # cells per axis for the ground-truth meshes
    gt_seeds: int = 4  # teacher samples per prompt in the ground-truth-vs-ground-truth baseline
    chamfer: ChamferConfig = field(default_factory=ChamferConfig)

    def __post_init__(self) -> None:
        if min(self.prompts, self.seeds, self.gt_seeds) < 1 or min(self.mesh_grid, self.gt_grid) < 8:
            raise ValueError(f"need prompts, seeds, gt_seeds >= 1 and grids >= 8, got {self}")

    def mesh_config(self, G: TriplaneGenerator) -> MeshConfig:
        # Coarse-to-fine needs a whole number of fine cells per coarse cell: the largest of 4, 2, 1.
        stride = next(s for s in (4, 2, 1) if self.mesh_grid % s == 0)
        return generation_mesh_config(G, MeshConfig(grid=self.mesh_grid, coarse_stride=stride))


@dataclass(frozen=True)
class SampleGeometry:
    prompt: str
    seed: int  # index of the latent within the prompt's samples
    chamfer: float | None  # None when the student's density has no surface
    yaw_deg: float | None
    vertices: int
    faces: int


@dataclass(frozen=True)
class GeometryResult:
    name: str
    samples: tuple[SampleGeometry, ...]
    gt_vs_gt: float  # mean Chamfer of teacher samples against the references
    wrong_shape: float  # mean Chamfer of the other shapes' references against the references

    @property
    def distances(self) -> list[float]:
        return [s.chamfer for s in self.samples if s.chamfer is not None]

    @property
    def empty(self) -> int:
        return sum(s.chamfer is None for s in self.samples)

    def to_json(self) -> dict:
        d = self.distances
        return {
            "name": self.name,
            "count": len(self.samples),
            "empty_meshes": self.empty,
            "chamfer_mean": float(np.mean(d)) if d else None,
            "chamfer_median": float(np.median(d)) if d else None,
            "gt_vs_gt_chamfer": self.gt_vs_gt,
            "wrong_shape_chamfer": self.wrong_shape,
            "per_sample": [dataclasses.asdict(s) for s in self.samples],
        }


class GroundTruth:
    """Reference and teacher meshes and the baselines, cached: many samples share a prompt or a shape."""

    def __init__(self, config: GeometryConfig):
        self.config = config
        self.mesh = cache(self._mesh)
        self.chamfer = cache(self._chamfer)

    def _mesh(self, scene: Scene) -> Mesh:
        return scene_mesh(scene, grid=self.config.gt_grid)

    def _chamfer(self, pred: Scene, ref: Scene) -> float:
        period = SHAPE_GEOMETRY[ref.spec.shape].yaw_period_deg
        return mesh_chamfer(self.mesh(pred), self.mesh(ref), self.config.chamfer, period_deg=period).distance

    @staticmethod
    def reference(spec: SceneSpec) -> Scene:
        """The prompt's shape at yaw 0, its size, the middle scale jitter; colour and shade play no part."""
        jitter = sum(DEFAULT_VARIATION.scale_jitter) / 2
        return Scene(SceneSpec("red", spec.shape, spec.size), yaw_deg=0.0, scale=spec.size_factor * jitter, shade=1.0)

    def gt_vs_gt(self, spec: SceneSpec) -> float:
        ref = self.reference(spec)
        return float(np.mean([self.chamfer(sample_scene(spec, s), ref) for s in range(self.config.gt_seeds)]))

    def wrong_shape(self, spec: SceneSpec) -> float:
        ref = self.reference(spec)
        others = [self.reference(SceneSpec(spec.colour, shape, spec.size)) for shape in SHAPES if shape != spec.shape]
        return float(np.mean([self.chamfer(o, ref) for o in others]))


def geometry_samples(eval_set: EvalSet, config: GeometryConfig) -> list[tuple[int, int]]:
    """(sample index, seed index) of the samples to mesh: the first `seeds` of `prompts` spread-out prompts."""
    order = list(dict.fromkeys(eval_set.prompts))  # distinct prompts, in order
    per_prompt = len(eval_set) // len(order)
    chosen = set(spread(order, config.prompts))
    return [
        (i * per_prompt + s, s)
        for i, p in enumerate(order)
        if p in chosen
        for s in range(min(config.seeds, per_prompt))
    ]


@torch.no_grad()
def student_mesh(G: TriplaneGenerator, eval_set: EvalSet, index: int, mesh_config: MeshConfig) -> Mesh | None:
    """The mesh of sample `index` of the set, as `et3d-gen` would export it; None when there is no surface."""
    one = subset(eval_set, slice(index, index + 1))
    planes = G.planes(one.emb.to(G.device), one.z.to(G.device))  # (1, 3, C, R, R)
    try:
        return extract_surface(PlanesField(G, planes), mesh_config)
    except EmptySurfaceError:
        return None


def evaluate_geometry(
    G: TriplaneGenerator,
    eval_set: EvalSet,
    config: GeometryConfig = GeometryConfig(),
    progress: Callable[[int], None] | None = None,
    ground_truth: GroundTruth | None = None,
) -> GeometryResult:
    """Chamfer distance of the student's meshes of (a subset of) `eval_set`, with the two baselines."""
    gt = ground_truth or GroundTruth(config)
    mesh_config = config.mesh_config(G)
    was_training = G.training
    G.eval()
    samples = []
    try:
        for index, seed in geometry_samples(eval_set, config):
            prompt = eval_set.prompts[index]
            ref = gt.reference(parse_prompt(prompt))
            mesh = student_mesh(G, eval_set, index, mesh_config)
            if mesh is None:
                samples.append(SampleGeometry(prompt, seed, None, None, 0, 0))
            else:
                period = SHAPE_GEOMETRY[ref.spec.shape].yaw_period_deg
                result = mesh_chamfer(mesh, gt.mesh(ref), config.chamfer, period_deg=period)
                samples.append(
                    SampleGeometry(prompt, seed, result.distance, result.yaw_deg, len(mesh[0]), len(mesh[1]))
                )
            if progress is not None:
                progress(1)
    finally:
        G.train(was_training)
    specs = list(dict.fromkeys(parse_prompt(s.prompt) for s in samples))
    return GeometryResult(
        name=eval_set.name,
        samples=tuple(samples),
        gt_vs_gt=float(np.mean([gt.gt_vs_gt(s) for s in specs])),
        wrong_shape=float(np.mean([gt.wrong_shape(s) for s in specs])),
    )

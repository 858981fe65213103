"""Chamfer distance between two triangle meshes, best over a rotation about the up axis (docs/measuring.md §Chamfer).

Both meshes are sampled on their surfaces; the distance is the mean of the two directed mean nearest-neighbour
distances (world units, not squared, so it reads as "how far the surfaces are apart on average"):

    d(A, B) = 1/2 (mean_{a in A_query} min_{b in B_target} |R a - b|
             + mean_{b in B_query} min_{a in A_target} |a - R^T b|)

Each mesh carries a small query sample and a dense target sample: the estimate of a mesh against itself is then
the residual sampling noise, about half the spacing of the dense sample. Faces are chosen by systematic
(stratified) sampling proportional to area, which keeps the dense sample evenly spread and that noise low.

The student's yaw is free (z carries it, like the teacher's per-seed yaw), so the prediction is rotated about
world z to best match the reference: a coarse grid over the reference's symmetry period, then local halving
of the step around the best yaw. Rotating the query points instead of rebuilding a tree makes each yaw two
k-d tree lookups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from pipeline.procedural.scene import yaw_matrix


@dataclass(frozen=True)
class ChamferConfig:
    query_points: int = 2000  # points per mesh whose nearest neighbours are looked up
    target_points: int = 20000  # dense sample per mesh the lookups search
    yaw_step_deg: float = 5.0  # coarse grid over the symmetry period
    yaw_tolerance_deg: float = 0.1  # local refinement stops below this step
    seed: int = 0  # surface sampling

    def __post_init__(self) -> None:
        if self.query_points < 1 or self.target_points < 1:
            raise ValueError(
                f"query_points and target_points must be >= 1, got {self.query_points}, {self.target_points}"
            )
        if not 0 < self.yaw_tolerance_deg <= self.yaw_step_deg:
            raise ValueError(
                f"need 0 < yaw_tolerance_deg <= yaw_step_deg, got {self.yaw_tolerance_deg}, {self.yaw_step_deg}"
            )


@dataclass(frozen=True)
class ChamferResult:
    distance: float  # world units
    yaw_deg: float  # rotation about z applied to the prediction to match the reference


def rotate_z(points: np.ndarray, yaw_deg: float) -> np.ndarray:
    """(N, 3) points rotated about world z by `yaw_deg`, counter-clockwise seen from above -> (N, 3) float64."""
    return np.asarray(points, dtype=np.float64) @ _yaw(yaw_deg).T


def _yaw(yaw_deg: float) -> np.ndarray:
    """(3, 3) float64 rotation about z, the procedural scenes' convention (`pipeline.procedural.scene.yaw_matrix`)."""
    return yaw_matrix(torch.tensor(float(yaw_deg), dtype=torch.float64)).numpy()


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points (n, 3) float64 uniformly distributed over the area of a triangle mesh (V, 3), (F, 3)."""
    if len(faces) == 0:
        raise ValueError("the mesh has no faces to sample")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    v = np.asarray(vertices, dtype=np.float64)
    tri = v[np.asarray(faces, dtype=np.int64)]  # (F, 3, 3)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)  # (F,)
    cumulative = np.cumsum(area)
    if not cumulative[-1] > 0:
        raise ValueError(f"the mesh's {len(faces)} faces have zero total area")
    # Systematic sampling: n evenly spaced positions along the cumulative area, one random offset.
    positions = (rng.random() + np.arange(n)) / n * cumulative[-1]
    chosen = np.minimum(np.searchsorted(cumulative, positions, side="right"), len(faces) - 1)  # (n,)
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)  # uniform over the triangle: barycentric (1 - s, s (1 - r2), s r2)
    a, b, c = tri[chosen, 0], tri[chosen, 1], tri[chosen, 2]
    return (1 - s)[:, None] * a + (s * (1 - r2))[:, None] * b + (s * r2)[:, None] * c


@dataclass(frozen=True)
class SurfaceSample:
    """A mesh's query points (Q, 3), dense target points (T, 3) and the k-d tree over the targets."""

    query: np.ndarray
    target: np.ndarray
    tree: cKDTree

    @classmethod
    def of(cls, vertices: np.ndarray, faces: np.ndarray, config: ChamferConfig, rng: np.random.Generator):
        query = sample_surface(vertices, faces, config.query_points, rng)
        target = sample_surface(vertices, faces, config.target_points, rng)
        return cls(query, target, cKDTree(target))


def chamfer_at_yaw(pred: SurfaceSample, ref: SurfaceSample, yaw_deg: float) -> float:
    """Symmetric mean nearest-neighbour distance between `pred` rotated by `yaw_deg` about z and `ref`."""
    rot = _yaw(yaw_deg)  # (3, 3)
    forward, _ = ref.tree.query(pred.query @ rot.T)  # pred rotated -> ref
    backward, _ = pred.tree.query(ref.query @ rot)  # ref rotated back (R^T) -> pred
    return float(0.5 * (forward.mean() + backward.mean()))


def best_yaw(pred: SurfaceSample, ref: SurfaceSample, period_deg: float, config: ChamferConfig) -> ChamferResult:
    """The yaw in [0, period) minimising `chamfer_at_yaw`; period 0 means the reference is a solid of revolution."""
    if period_deg == 0:
        return ChamferResult(chamfer_at_yaw(pred, ref, 0.0), 0.0)
    steps = max(1, round(period_deg / config.yaw_step_deg))
    step = period_deg / steps
    scores = {yaw: chamfer_at_yaw(pred, ref, yaw) for yaw in (np.arange(steps) * step).tolist()}
    yaw = min(scores, key=scores.__getitem__)
    while step > config.yaw_tolerance_deg:
        step /= 2
        for candidate in (yaw - step, yaw + step):
            scores[candidate] = chamfer_at_yaw(pred, ref, candidate)
        yaw = min((yaw, yaw - step, yaw + step), key=scores.__getitem__)
    return ChamferResult(scores[yaw], float(yaw % period_deg))


def mesh_chamfer(
    pred: tuple[np.ndarray, np.ndarray],
    ref: tuple[np.ndarray, np.ndarray],
    config: ChamferConfig = ChamferConfig(),
    *,
    period_deg: float,
) -> ChamferResult:
    """Chamfer distance of mesh `pred` (vertices, faces) to `ref`, best over yaw within the reference's symmetry
    period (90 for a cube, 0 for a solid of revolution, 360 for no symmetry)."""
    if not 0 <= period_deg <= 360:
        raise ValueError(f"period_deg must lie in [0, 360] (0 = a solid of revolution), got {period_deg}")
    rng = np.random.default_rng(config.seed)
    return best_yaw(SurfaceSample.of(*pred, config, rng), SurfaceSample.of(*ref, config, rng), period_deg, config)

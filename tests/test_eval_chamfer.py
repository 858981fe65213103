"""Chamfer distance best over yaw: ~0 for a mesh against itself and a rotated copy, clearly > 0 across shapes."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.procedural import Scene, SceneSpec, scene_mesh
from student.eval.chamfer import ChamferConfig, SurfaceSample, chamfer_at_yaw, mesh_chamfer, rotate_z, sample_surface

CONFIG = ChamferConfig(query_points=1000, target_points=8000)


@pytest.fixture(scope="module")
def cube() -> tuple[np.ndarray, np.ndarray]:
    return scene_mesh(Scene(SceneSpec("red", "cube"), yaw_deg=0.0, scale=1.0, shade=1.0), grid=32)


@pytest.fixture(scope="module")
def sphere() -> tuple[np.ndarray, np.ndarray]:
    return scene_mesh(Scene(SceneSpec("red", "sphere"), yaw_deg=0.0, scale=1.0, shade=1.0), grid=32)


def test_surface_samples_lie_on_the_surface() -> None:
    # A unit right triangle in z = 0: samples inside it, spread over its area (mean = the centroid).
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    points = sample_surface(vertices, np.array([[0, 1, 2]]), 20000, np.random.default_rng(0))
    assert np.allclose(points[:, 2], 0) and (points[:, :2] >= 0).all() and (points[:, :2].sum(1) <= 1 + 1e-9).all()
    assert np.allclose(points.mean(0), [1 / 3, 1 / 3, 0], atol=0.01)


def test_mesh_against_itself_is_near_zero(cube) -> None:
    result = mesh_chamfer(cube, cube, CONFIG, period_deg=90.0)
    # Only the sampling noise of independent surface samples remains (half a dense-sample spacing).
    assert result.distance < 0.01


def test_rotated_copy_is_near_zero_best_over_yaw(cube) -> None:
    vertices, faces = cube
    rotated = (rotate_z(vertices, 37.0).astype(np.float32), faces)
    rng = np.random.default_rng(0)
    pred, ref = SurfaceSample.of(*rotated, CONFIG, rng), SurfaceSample.of(*cube, CONFIG, rng)
    assert chamfer_at_yaw(pred, ref, 0.0) > 0.02  # unaligned, the corners are far apart

    over_full_turn = mesh_chamfer(rotated, cube, CONFIG, period_deg=360.0)
    assert over_full_turn.distance < 0.01
    # Undoing 37 degrees: -37 modulo the cube's 90-degree symmetry.
    assert min(abs(over_full_turn.yaw_deg % 90 - 53.0), 90 - abs(over_full_turn.yaw_deg % 90 - 53.0)) < 0.5
    over_period = mesh_chamfer(rotated, cube, CONFIG, period_deg=90.0)
    assert over_period.distance < 0.01 and abs(over_period.yaw_deg - 53.0) < 0.5


def test_different_shapes_are_far_apart(cube, sphere) -> None:
    same = mesh_chamfer(cube, cube, CONFIG, period_deg=90.0).distance
    different = mesh_chamfer(sphere, cube, CONFIG, period_deg=90.0).distance
    # Cube half-side 0.37 vs sphere radius 0.5: faces 0.13 inside, corners 0.14 outside the sphere.
    assert different > 0.04
    assert different > 5 * same


def test_symmetric_and_revolution_searches() -> None:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    mesh = (vertices, np.array([[0, 1, 2]]))
    assert mesh_chamfer(mesh, mesh, CONFIG, period_deg=0.0).yaw_deg == 0.0  # revolution: no search
    with pytest.raises(ValueError, match="period_deg"):
        mesh_chamfer(mesh, mesh, CONFIG, period_deg=400.0)
    with pytest.raises(ValueError, match="no faces"):
        sample_surface(vertices, np.zeros((0, 3), dtype=np.int64), 10, np.random.default_rng(0))

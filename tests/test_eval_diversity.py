"""Fair diversity: factor spreads fitted from renders reward the teacher's kind of variety, never pixel noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.cameras import Cameras, orbit_cameras
from pipeline.procedural import AttributeOracle, parse_prompt, render_scene, sample_scene
from student.eval.diversity import circular_variance, cover_shapes, factor_spreads
from student.eval.frame import border_deviation, compare_frames

SEEDS = 16


def _cameras(resolution: int = 64) -> Cameras:
    # Two views 45 degrees apart, as `DiversityConfig` places them.
    views = [orbit_cameras(1, 15.0, 30.0 + 45.0 * k, radius=2.7, fovy_deg=40.0, resolution=resolution) for k in (0, 1)]
    return Cameras(torch.cat([v.c2w for v in views]), torch.cat([v.fovy_deg for v in views]), resolution)


def _teacher(prompt: str, cams: Cameras, seeds: range) -> torch.Tensor:
    spec = parse_prompt(prompt)
    return torch.stack([render_scene(sample_scene(spec, s), cams) for s in seeds])  # (S, V, H, W, 3)


@pytest.fixture(scope="module")
def cube() -> dict:
    cams = _cameras()
    return {"cams": cams, "teacher": _teacher("a red cube", cams, range(SEEDS))}


def test_noise_on_one_pose_scores_no_factor_diversity_though_its_pixels_differ(cube) -> None:
    oracle = AttributeOracle()
    one_pose = cube["teacher"][:1].expand(SEEDS, -1, -1, -1, -1).float()  # (S, V, H, W, 3) every z: seed 0
    noise = torch.randn(one_pose.shape, generator=torch.Generator().manual_seed(0)) * 0.06 * 255
    noisy = (one_pose + noise).round().clamp(0, 255).to(torch.uint8)
    teacher = factor_spreads(cube["teacher"], cube["cams"], "cube", oracle)
    student = factor_spreads(noisy, cube["cams"], "cube", oracle)
    # The pixel metric calls the noise diversity ...
    assert student["image_l1"] / teacher["image_l1"] > 0.5
    # ... the fitted factors do not move.
    for factor in ("yaw", "scale", "shade"):
        assert teacher[factor] > 0.01, factor
        assert student[factor] / teacher[factor] < 0.1, (factor, student[factor], teacher[factor])


def test_other_teacher_seeds_score_a_ratio_near_one(cube) -> None:
    oracle = AttributeOracle()
    other = _teacher("a red cube", cube["cams"], range(100, 100 + SEEDS))
    teacher = factor_spreads(cube["teacher"], cube["cams"], "cube", oracle)
    student = factor_spreads(other, cube["cams"], "cube", oracle)
    for factor in ("yaw", "scale", "shade", "image_l1"):
        assert 0.5 < student[factor] / teacher[factor] < 2.0, (factor, student[factor], teacher[factor])


def test_yaw_is_undefined_for_round_shapes_and_spreads_need_foreground() -> None:
    cams = _cameras(32)
    spreads = factor_spreads(_teacher("a blue sphere", cams, range(4)), cams, "sphere", AttributeOracle())
    assert spreads["yaw"] is None and spreads["scale"] > 0
    blank = torch.full((4, 2, 32, 32, 3), 255, dtype=torch.uint8)
    empty = factor_spreads(blank, cams, "cube", AttributeOracle())
    assert (empty["yaw"], empty["scale"], empty["shade"], empty["image_l1"]) == (None, None, None, 0.0)


def test_circular_variance_is_taken_modulo_the_symmetry() -> None:
    assert circular_variance(torch.tensor([0.0, 90.0, 180.0, 270.0]), 90.0) == pytest.approx(0.0, abs=1e-9)
    assert circular_variance(torch.tensor([0.0, 45.0]), 90.0) == pytest.approx(1.0, abs=1e-9)  # opposite on the circle
    assert circular_variance(torch.tensor([0.0, 22.5, 45.0, 67.5]), 90.0) == pytest.approx(1.0, abs=1e-9)
    assert circular_variance(torch.tensor([10.0, 20.0]), 90.0) == pytest.approx(1 - np.cos(np.pi / 9), abs=1e-9)


def test_cover_shapes_takes_one_prompt_per_shape_first() -> None:
    prompts = ["a red cube", "a blue cube", "a red cone", "a green cube", "a pink torus"]
    assert cover_shapes(prompts, 3) == ["a red cube", "a red cone", "a pink torus"]
    assert cover_shapes(prompts, 4) == ["a red cube", "a red cone", "a pink torus", "a blue cube"]


def test_frame_border_sees_a_line_along_the_edge_and_nothing_inside() -> None:
    clean = np.full((2, 3, 16, 16, 3), 255, dtype=np.uint8)
    clean[:, :, 4:12, 4:12] = (200, 20, 20)  # an object well inside the frame
    lined = clean.copy()
    lined[:, :, :, 1] = (255, 155, 255)  # a magenta line one pixel in from the left edge
    assert float(border_deviation(clean).max()) == 0.0
    d = border_deviation(lined)
    assert d.numel() == 2 * 3 * (16 * 16 - 12 * 12)
    assert float(d.max()) == pytest.approx(100 / 255)
    assert float(d.mean()) == pytest.approx(16 / (16 * 16 - 12 * 12) * 100 / 255)
    report = compare_frames({"G_ema": lined}, clean)
    assert report["teacher"]["mean"] == 0.0 and report["generators"]["G_ema"]["excess_mean"] > 0.05
    assert report["generators"]["G_ema"]["visible_fraction"] == pytest.approx(16 / 112)

"""Rendering: silhouettes where geometry says, world-fixed lighting, anti-aliasing, the teacher."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.cameras import orbit_cameras
from pipeline.procedural import COLOURS, SceneSpec, render_scene, sample_scene
from pipeline.procedural import shapes as S
from pipeline.procedural.render import AMBIENT, DIFFUSE, LIGHT_DIR
from pipeline.procedural.scene import Scene
from teacher_dump.teachers.base import build_teacher


def _foreground(views: torch.Tensor) -> torch.Tensor:
    return (views < 250).any(dim=-1)


def test_sphere_silhouette_matches_its_analytic_projection_within_a_pixel() -> None:
    res = 48
    scene = sample_scene(SceneSpec("blue", "sphere"), 0)
    cams = orbit_cameras(4, 20.0, 10.0, resolution=res)
    fg = _foreground(render_scene(scene, cams, supersample=1))  # (V, H, W)
    # A sphere centred on the optical axis projects to a disc of radius f * tan(asin(r / D)).
    radius = S.SPHERE_RADIUS * scene.scale
    focal = cams.focal_px()[0].item()
    disc_px = focal * math.tan(math.asin(radius / cams.origins[0].norm().item()))
    centres = torch.arange(res) + 0.5 - res / 2
    dist = (centres.view(1, -1) ** 2 + centres.view(-1, 1) ** 2).sqrt()  # (H, W) from the image centre
    analytic = dist < disc_px
    wrong = fg != analytic.unsqueeze(0)
    assert wrong.sum() <= 8  # a few rim pixels of ~1400 per view, all at the boundary:
    assert ((dist - disc_px).abs().unsqueeze(0).expand_as(wrong)[wrong] < 1.0).all()
    assert fg.sum(dim=(1, 2)).float().mean() == pytest.approx(math.pi * disc_px**2, rel=0.03)


def test_sphere_colour_is_the_world_lit_albedo_in_every_view() -> None:
    res = 40
    scene = Scene(SceneSpec("orange", "sphere"), yaw_deg=0.0, scale=1.2, shade=0.9)
    cams = orbit_cameras(4, 25.0, 30.0, resolution=res)
    views = render_scene(scene, cams, supersample=1).float() / 255  # (V, H, W, 3)
    origins, dirs = cams.rays()
    # Analytic ray-sphere hit, normal = hit / radius, colour = albedo * (ambient + diffuse * max(0, n.l)).
    radius = S.SPHERE_RADIUS * scene.scale
    b = (origins * dirs).sum(-1)
    disc = b**2 - (origins.norm(dim=-1) ** 2 - radius**2)
    interior = disc > 0.02  # pixels well inside the silhouette
    t = -b - disc.clamp_min(0).sqrt()
    normal = (origins + t.unsqueeze(-1) * dirs) / radius
    light = torch.tensor(LIGHT_DIR) / torch.tensor(LIGHT_DIR).norm()
    intensity = AMBIENT + DIFFUSE * (normal @ light).clamp_min(0)
    expected = torch.tensor(scene.albedo) * intensity.unsqueeze(-1)
    assert interior.sum() > 4 * 300
    assert (views - expected)[interior].abs().max() < 2.5 / 255
    # The lit side and the shadow side are both in view: the check covers a real range of shading.
    assert intensity[interior].max() - intensity[interior].min() > 0.4


def test_a_cube_face_has_the_same_colour_from_two_views() -> None:
    scene = Scene(SceneSpec("green", "cube"), yaw_deg=0.0, scale=1.0, shade=1.0)
    cams = orbit_cameras(8, 10.0, 0.0, resolution=64)  # views 0 and 1: azimuths 0 and 45, both see -y
    views = render_scene(scene, cams, supersample=2)
    point = torch.tensor([[[0.1, -S.CUBE_HALF, 0.05]]]).expand(8, 1, 3)  # on the -y face
    uv, _ = cams.project(point)
    colours = [views[v, int(uv[v, 0, 1]), int(uv[v, 0, 0])].int() for v in (0, 1)]
    assert (colours[0] - colours[1]).abs().max() <= 1
    assert (colours[0] < 250).all()


def test_anti_aliasing_blends_the_rim_with_white() -> None:
    scene = sample_scene(SceneSpec("red", "cylinder"), 2)
    cams = orbit_cameras(4, 15.0, 0.0, resolution=32)
    hard = render_scene(scene, cams, supersample=1)
    soft = render_scene(scene, cams, supersample=4)
    assert hard.dtype == torch.uint8 and hard.shape == (4, 32, 32, 3)
    levels = lambda v: len(torch.unique(v[..., 1]))  # noqa: E731
    assert levels(soft) > levels(hard) + 5
    assert (_foreground(hard) ^ _foreground(soft)).float().mean() < 0.02
    assert ((soft == 255).all(dim=-1)).float().mean() > 0.5  # white background


def test_procedural_teacher_is_deterministic_and_batch_independent() -> None:
    teacher = build_teacher("procedural", num_views=4, resolution=24)
    prompts = ["a red cube", "a small blue torus", "a large yellow cone"]
    together = teacher.generate(prompts, [0, 5, 9])
    alone = teacher.generate(prompts[1:2], [5])
    np.testing.assert_array_equal(together.views[1], alone.views[0])
    np.testing.assert_array_equal(together.cameras[1], alone.cameras[0])
    assert together.views.shape == (3, 4, 24, 24, 3) and together.views.dtype == np.uint8
    assert together.cameras.dtype == np.float32 and together.fovy.shape == (3, 4)
    # Cameras: MVDream layout at the default radius, elevation in [0, 30), views 90 degrees apart.
    pos = together.cameras[:, :, :3, 3]
    np.testing.assert_allclose(np.linalg.norm(pos, axis=-1), 2.7, rtol=1e-5)
    elevation = np.degrees(np.arcsin(pos[..., 2] / 2.7))
    assert (elevation >= 0).all() and (elevation < 30).all()
    assert np.ptp(elevation, axis=1).max() < 1e-3
    azimuth = np.degrees(np.arctan2(pos[..., 1], pos[..., 0]))
    np.testing.assert_allclose(np.diff(azimuth, axis=1) % 360, 90, atol=1e-3)
    other_seed = teacher.generate(prompts[:1], [1])
    assert not np.array_equal(other_seed.views[0], together.views[0])
    # The hash names the teacher's settings: equal for an equal build, different for another resolution.
    assert build_teacher("procedural", num_views=4, resolution=24).config_hash() == teacher.config_hash()
    assert build_teacher("procedural", num_views=4, resolution=32).config_hash() != teacher.config_hash()


def test_procedural_teacher_rejects_out_of_vocabulary_prompts_naming_the_words() -> None:
    teacher = build_teacher("procedural")
    teacher.validate_prompts([f"a {c} sphere" for c in COLOURS])
    with pytest.raises(ValueError) as info:
        teacher.validate_prompts(["a red cube", "a golden retriever", "a big cube"])
    message = str(info.value)
    assert "2 prompt(s)" in message and "'golden'" in message and "'retriever'" in message and "'big'" in message

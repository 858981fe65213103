"""Camera convention: MVDream reference values (its golden matrices: test_mvdream_parity.py), rays through
pixel centres, projection round trip."""

import math

import numpy as np
import pytest
import torch

from pipeline.cameras import (
    DEFAULT_FOVY_DEG,
    DEFAULT_RADIUS,
    Cameras,
    OrbitSampler,
    mvdream_camera_matrices,
    orbit_cameras,
)


def test_mvdream_reference_values_elevation_15():
    # docs/mvdream.md §Cameras: azimuth 0 looks from -Y, azimuth 90 from +X, positive elevation above.
    m = mvdream_camera_matrices(4, 15.0)
    c, s = math.cos(math.radians(15)), math.sin(math.radians(15))
    np.testing.assert_allclose(m[0, :3, 3], [0, -c, s], atol=1e-6)
    np.testing.assert_allclose(m[1, :3, 3], [c, 0, s], atol=1e-6)


def test_orbit_cameras_look_at_origin():
    cams = orbit_cameras(4, 20.0, 30.0, resolution=33)
    assert torch.allclose(cams.origins.norm(dim=-1), torch.full((4,), DEFAULT_RADIUS))
    _, dirs = cams.rays()
    centre = dirs[:, 16, 16]  # odd resolution: the middle pixel's ray is the optical axis
    to_origin = -cams.origins / cams.origins.norm(dim=-1, keepdim=True)
    assert torch.allclose(centre, to_origin, atol=1e-5)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(()), atol=1e-6)


def test_rays_fov_edges():
    cams = orbit_cameras(1, 0.0, resolution=64, fovy_deg=DEFAULT_FOVY_DEG)
    _, dirs = cams.rays()
    axis = -cams.origins[0] / cams.origins[0].norm()
    # the top pixel row's centre is half a pixel inside the frustum edge at fovy / 2
    top = dirs[0, 0, 32]
    half = math.radians(DEFAULT_FOVY_DEG) / 2
    expected = math.atan(math.tan(half) * (1 - 1 / 64))
    vertical_angle = math.atan2(float(top[2]), float(top @ axis))  # z is up, axis is horizontal here
    assert abs(vertical_angle - expected) < 1e-6
    assert float(top[2]) > float(dirs[0, 63, 32][2])  # z is up: the top row looks higher


def test_project_lands_on_the_pixel_whose_ray_passes_through_it():
    rng = torch.Generator().manual_seed(0)
    cams = orbit_cameras(4, 25.0, 10.0, resolution=48)
    origins, dirs = cams.rays()
    rows = torch.randint(0, 48, (4, 50), generator=rng)
    cols = torch.randint(0, 48, (4, 50), generator=rng)
    depth = 1.5 + torch.rand(4, 50, generator=rng)
    idx = torch.arange(4)[:, None]
    pts = origins[idx, rows, cols] + depth[..., None] * dirs[idx, rows, cols]  # (4, 50, 3)
    uv, z = cams.project(pts)
    assert torch.allclose(uv[..., 0], cols.float() + 0.5, atol=1e-3)
    assert torch.allclose(uv[..., 1], rows.float() + 0.5, atol=1e-3)
    assert (z > 0).all()


def test_eg3d_label_and_mvdream_condition():
    cams = orbit_cameras(4, 15.0, resolution=64)
    label = cams.eg3d_label()
    assert label.shape == (4, 25)
    assert torch.equal(label[:, :16], cams.c2w.reshape(4, 16))
    f = 0.5 / math.tan(math.radians(DEFAULT_FOVY_DEG) / 2)
    assert torch.allclose(label[:, 16:], torch.tensor([f, 0, 0.5, 0, f, 0.5, 0, 0, 1.0]).expand(4, 9))
    cond = cams.mvdream_condition()
    ref = torch.from_numpy(mvdream_camera_matrices(4, 15.0)).reshape(4, 16)
    assert torch.allclose(cond, ref, atol=1e-6)


def test_orbit_sampler_is_deterministic_and_in_range():
    sampler = OrbitSampler(num_views=4, elevation_range=(5.0, 10.0))
    a = sampler.sample(torch.Generator().manual_seed(3))
    b = sampler.sample(torch.Generator().manual_seed(3))
    assert torch.equal(a[0].c2w, b[0].c2w) and a[1:] == b[1:]
    assert 5.0 <= a[1] < 10.0 and 0.0 <= a[2] < 360.0


def test_bad_cameras_are_rejected():
    with pytest.raises(ValueError, match="c2w"):
        Cameras(torch.eye(4), torch.tensor([40.0]), 64)
    with pytest.raises(ValueError, match="fovy"):
        Cameras(torch.eye(4)[None], torch.tensor([190.0]), 64)
    with pytest.raises(ValueError, match="outside the scene box"):
        orbit_cameras(4, 0.0, radius=1.0)


def test_orbit_has_exactly_v_views_for_any_start():
    # MVDream's float arange yields V + 1 azimuths for some starts; the orbit sampler must not.
    for start in torch.linspace(0, 359, 97).tolist():
        cams = orbit_cameras(3, 10.0, start)
        assert len(cams) == 3
        az = torch.rad2deg(torch.atan2(cams.origins[:, 0], -cams.origins[:, 1]))  # 0 looks from -y, 90 from +x
        gaps = torch.remainder(az.diff(), 360.0)
        assert torch.allclose(gaps, torch.full_like(gaps, 120.0), atol=1e-3)

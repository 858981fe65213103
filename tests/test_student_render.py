"""Renderer goldens: analytic densities through the real ray generator, sampler and compositor."""

from __future__ import annotations

import math

import pytest
import torch
from support.student_data import one_torch_thread

from pipeline.cameras import Cameras, orbit_cameras
from student.render.compositing import composite
from student.render.rays import camera_rays, ray_box_bounds
from student.render.renderer import VolumeRenderer
from student.render.sampling import importance_depths, stratified_depths


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def top_down_camera(resolution: int) -> Cameras:
    """A camera at (0, 0, 2.7) looking down -z (identity rotation: OpenGL camera axes = world axes)."""
    c2w = torch.eye(4)
    c2w[2, 3] = 2.7
    return Cameras(c2w[None], torch.tensor([40.0]), resolution)


def constant_field(sigma: float, colour: float):
    def field(points):
        b, p, _ = points.shape
        return torch.full((b, p), sigma), torch.full((b, p, 3), colour)

    return field


def test_constant_density_in_the_box_composites_to_one_minus_exp_sigma_length():
    cams = orbit_cameras(2, 20.0, resolution=8)
    origins, dirs = camera_rays(cams.c2w[None], cams.fovy_deg[None], 8)  # (1, 128, 3)
    near, far, hit = ray_box_bounds(origins, dirs)
    assert hit.all()
    sigma, colour = 0.7, 0.25
    for rng in (None, torch.Generator().manual_seed(0)):  # exact with and without jitter
        out = VolumeRenderer(7, 5)(constant_field(sigma, colour), origins, dirs, rng)
        expected = 1 - torch.exp(-sigma * (far - near))
        torch.testing.assert_close(out.opacity, expected, atol=1e-5, rtol=0)
        # White background: c * opacity + 1 * (1 - opacity).
        torch.testing.assert_close(out.features[..., 0], colour * expected + (1 - expected), atol=1e-5, rtol=0)


def test_slab_along_the_view_axis_gives_one_minus_exp_sigma_thickness_over_cos():
    cams = top_down_camera(16)
    origins, dirs = camera_rays(cams.c2w[None], cams.fovy_deg[None], 16)
    sigma, half = 3.0, 0.2

    def slab(points):
        inside = (points[..., 2].abs() < half).float()
        return sigma * inside, torch.zeros(*points.shape[:2], 3)

    out = VolumeRenderer(64, 64)(slab, origins, dirs)
    expected = 1 - torch.exp(-sigma * 2 * half / dirs[..., 2].abs())
    assert expected.min() > 0.69  # the test means something: the slab is far from transparent
    torch.testing.assert_close(out.opacity, expected, atol=0.01, rtol=0)


@pytest.mark.parametrize("centre", [(0.0, 0.0, 0.0), (0.3, -0.25, 0.15)])
def test_sphere_silhouette_matches_the_projection_within_a_pixel(centre):
    res, radius = 32, 0.45
    cams = orbit_cameras(4, 15.0, 30.0, resolution=res)
    c = torch.tensor(centre)
    origins, dirs = camera_rays(cams.c2w[None], cams.fovy_deg[None], res)

    def sphere(points):
        inside = ((points - c).norm(dim=-1) < radius).float()
        return 1e3 * inside, torch.zeros(*points.shape[:2], 3)

    mask = VolumeRenderer(32, 64)(sphere, origins, dirs).opacity.reshape(4, res, res) > 0.5
    # Analytic: a pixel is covered iff its ray passes within `radius` of the centre.
    o, d = origins.reshape(4, res, res, 3), dirs.reshape(4, res, res, 3)
    t = ((c - o) * d).sum(-1)
    miss = (o + t.unsqueeze(-1) * d - c).norm(dim=-1)  # (4, R, R) closest distance
    truth = miss < radius
    # World size of one pixel at the sphere's distance.
    pixel = 2 * 2.7 * math.tan(math.radians(20)) / res
    wrong = mask != truth
    assert truth.sum() > 100 and (truth.float().mean(dim=(1, 2)) > 0.05).all()
    assert wrong.sum() <= 0.02 * truth.sum()
    assert ((miss[wrong] - radius).abs() < pixel).all(), "a mismatched pixel lies more than a pixel off the edge"
    # The silhouette's centroid is where the camera projects the sphere's centre.
    uv, _ = cams.project(c.expand(4, 1, 3))
    rows, cols = torch.meshgrid(torch.arange(res) + 0.5, torch.arange(res) + 0.5, indexing="ij")
    m = mask.float()
    centroid = torch.stack([(m * cols).sum((1, 2)), (m * rows).sum((1, 2))], -1) / m.sum((1, 2)).unsqueeze(-1)
    torch.testing.assert_close(centroid, uv[:, 0], atol=0.5, rtol=0)


def test_rays_that_miss_the_box_see_the_background():
    origins = torch.tensor([[[0.0, 0.0, 3.0], [5.0, 5.0, 3.0]]])
    dirs = torch.tensor([[[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]]])
    near, far, hit = ray_box_bounds(origins, dirs)
    assert hit.tolist() == [[True, False]]
    torch.testing.assert_close(near[0, 0], torch.tensor(2.0))
    torch.testing.assert_close(far[0, 0], torch.tensor(4.0))
    out = VolumeRenderer(8, 4)(constant_field(5.0, 0.0), origins, dirs)
    assert out.opacity[0, 1] == 0 and out.features[0, 1, 0] == 1.0
    assert out.opacity[0, 0] > 0.99


def test_stratified_samples_without_generator_are_bin_centres_and_with_one_stay_in_their_bins():
    near, far = torch.tensor([[1.0]]), torch.tensor([[3.0]])
    torch.testing.assert_close(stratified_depths(near, far, 4)[0, 0], torch.tensor([1.25, 1.75, 2.25, 2.75]))
    jittered = stratified_depths(near, far, 4, torch.Generator().manual_seed(0))[0, 0]
    bins = torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0])
    assert ((jittered >= bins[:-1]) & (jittered < bins[1:])).all()
    assert not torch.allclose(jittered, torch.tensor([1.25, 1.75, 2.25, 2.75]))


def test_importance_samples_concentrate_where_the_weights_are():
    boundaries = torch.linspace(0, 1, 11).expand(1, 1, 11)
    weights = torch.zeros(1, 1, 10)
    weights[..., 6] = 1.0  # all weight in [0.6, 0.7)
    depths = importance_depths(boundaries, weights, 200)
    inside = ((depths >= 0.5) & (depths < 0.8)).float().mean()  # the peak and its blurred neighbours
    assert inside > 0.85
    assert depths.min() >= 0 and depths.max() <= 1
    assert (depths.diff(dim=-1) >= 0).all()  # deterministic quantiles come out sorted


def test_composite_weights_sum_to_opacity_and_depth_finds_an_opaque_wall():
    depths = torch.linspace(0.05, 1.95, 20).expand(1, 1, 20)
    sigma = torch.where(depths > 1.0, 1e4, 0.0)
    out = composite(depths, sigma, torch.zeros(1, 1, 20, 3), torch.zeros(1, 1), torch.full((1, 1), 2.0))
    torch.testing.assert_close(out.weights.sum(-1), out.opacity)
    assert out.opacity.item() == pytest.approx(1.0)
    assert 1.0 < out.depth.item() < 1.1

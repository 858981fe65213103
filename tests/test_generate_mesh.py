"""Meshing a known density: world placement, colours, orientation, coarse-to-fine, empty fields."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.generation import CapsuleField, SphereField

from student.mesh.config import MeshConfig, default_sigma_level
from student.mesh.extract import mesh_from_field
from student.mesh.marching_cubes import EmptySurfaceError, extract_surface

CENTRE = (0.1, -0.2, 0.3)  # off-centre and different per axis, so a swapped or flipped axis shows


def _trimesh(mesh):
    import trimesh

    return trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)


def test_sphere_mesh_sits_in_the_right_world_box_with_the_decoder_colours():
    field = SphereField(radius=0.5, centre=CENTRE, peak=100.0)
    mesh = mesh_from_field(field, MeshConfig(grid=128, sigma_level=50.0))
    lo, hi = mesh.bounds()
    np.testing.assert_allclose(lo, np.array(CENTRE) - 0.5, atol=4e-3)
    np.testing.assert_allclose(hi, np.array(CENTRE) + 0.5, atol=4e-3)
    radii = np.linalg.norm(mesh.vertices - np.array(CENTRE, dtype=np.float32), axis=1)
    assert abs(radii.mean() - 0.5) < 2e-3 and radii.std() < 2e-3
    # red follows x through the decoder's colour, green and blue are constant.
    expected_red = np.rint((mesh.vertices[:, 0] + 1) / 2 * 255)
    assert np.abs(mesh.colours[:, 0].astype(int) - expected_red).max() <= 1
    assert set(np.unique(mesh.colours[:, 1])) == {64} and set(np.unique(mesh.colours[:, 2])) == {191}
    tm = _trimesh(mesh)
    assert tm.is_watertight
    # Positive volume: faces wind with normals pointing out of the object.
    assert tm.volume == pytest.approx(4 / 3 * math.pi * 0.5**3, rel=0.01)


def test_coarse_to_fine_gives_the_dense_surface_with_far_fewer_queries():
    dense_field, fine_field = SphereField(centre=CENTRE), SphereField(centre=CENTRE)
    v_dense, f_dense = extract_surface(dense_field, MeshConfig(grid=64, sigma_level=50.0, coarse_stride=1))
    v_fine, f_fine = extract_surface(fine_field, MeshConfig(grid=64, sigma_level=50.0, coarse_stride=4))
    np.testing.assert_array_equal(f_dense, f_fine)
    np.testing.assert_allclose(v_dense, v_fine, atol=1e-6)
    assert dense_field.calls == 65**3
    assert fine_field.calls < 0.12 * dense_field.calls  # 28.5 k of 275 k: only crossed cells are refined


def test_refinement_follows_a_rod_thinner_than_a_coarse_cell():
    # Diameter 0.06 < the coarse cell 0.125: only 4 coarse samples fall inside; following the surface from
    # them must still recover the whole rod exactly as the dense grid does.
    rod = CapsuleField((-0.7, -0.6, -0.5), (0.6, 0.7, 0.45), radius=0.03)
    v_dense, f_dense = extract_surface(rod, MeshConfig(grid=64, sigma_level=50.0, coarse_stride=1))
    v_fine, f_fine = extract_surface(rod, MeshConfig(grid=64, sigma_level=50.0, coarse_stride=4))
    assert len(v_dense) > 500
    np.testing.assert_array_equal(f_dense, f_fine)
    np.testing.assert_allclose(v_dense, v_fine, atol=1e-6)


def test_a_thin_feature_touching_no_coarse_sample_is_missed_as_documented():
    # A rod halfway between coarse sample rows (y = z = 1/16) never reaches a coarse sample.
    rod = CapsuleField((-0.5, 0.0625, 0.0625), (0.5, 0.0625, 0.0625), radius=0.03)
    assert len(extract_surface(rod, MeshConfig(grid=64, sigma_level=50.0, coarse_stride=1))[0]) > 100
    with pytest.raises(EmptySurfaceError):
        extract_surface(rod, MeshConfig(grid=64, sigma_level=50.0, coarse_stride=4))


def test_object_larger_than_the_box_is_closed_at_the_box_faces():
    mesh = mesh_from_field(SphereField(radius=3.0), MeshConfig(grid=32, sigma_level=50.0))
    lo, hi = mesh.bounds()
    assert lo.min() >= -1.0 and hi.max() <= 1.0
    # Box faces are zero and the next samples 100: the level 50 lies half a cell (1/32) inside each face.
    np.testing.assert_allclose(lo, np.full(3, -1 + 1 / 32), atol=1e-5)
    np.testing.assert_allclose(hi, np.full(3, 1 - 1 / 32), atol=1e-5)
    assert _trimesh(mesh).is_watertight


@pytest.mark.parametrize("peak, level", [(1.0, 50.0), (0.0, 1.0)])
def test_a_density_below_the_level_everywhere_is_an_empty_surface_error(peak, level):
    with pytest.raises(EmptySurfaceError, match=r"never reaches the level .* \(max "):
        extract_surface(SphereField(peak=peak), MeshConfig(grid=16, sigma_level=level))


def test_default_level_is_where_a_slab_is_half_opaque():
    d = 2 / 128
    level = default_sigma_level(d)
    assert level == pytest.approx(44.3614, rel=1e-5)
    assert 1 - math.exp(-level * d) == pytest.approx(0.5)
    assert MeshConfig(grid=128).level == pytest.approx(level)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"grid": 4}, "grid must be >= 8"),
        ({"grid": 30, "coarse_stride": 4}, "divide grid=30"),
        ({"sigma_level": 0.0}, "finite density > 0"),
        ({"sigma_level": float("nan")}, "finite density > 0"),
    ],
)
def test_bad_mesh_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MeshConfig(**kwargs)

"""Textured assets and decimation: UV atlas, baked colour, GLB/OBJ read back, the oracle on a render, Chamfer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.generation import SphereField
from support.mesh_render import render_textured

from pipeline.cameras import orbit_cameras
from pipeline.procedural.oracle import AttributeOracle
from pipeline.procedural.vocabulary import COLOURS
from student.eval.chamfer import ChamferConfig, mesh_chamfer
from student.mesh.config import MeshConfig
from student.mesh.decimate import decimate
from student.mesh.export import save_mesh, textured_obj_files
from student.mesh.extract import mesh_from_field
from student.mesh.texture import rasterize_uv

CONFIG = MeshConfig(grid=48, sigma_level=50.0)


class BandedSphere(SphereField):
    """A sphere whose colour is ``albedo`` brightened and darkened in bands along z (|variation| <= 0.1)."""

    def __init__(self, albedo, **kwargs):
        super().__init__(**kwargs)
        self.albedo = torch.tensor(albedo)

    def query(self, points):
        sigma, _ = super().query(points)
        band = 1.0 + 0.1 * torch.sin(12 * points[:, 2:3])  # (P, 1)
        return sigma, (self.albedo * band).clamp(0, 1).expand(len(points), 3)


@pytest.fixture(scope="module")
def textured():
    return mesh_from_field(SphereField(radius=0.6), CONFIG, max_faces=3000, texture_size=128)


def test_textured_mesh_has_uvs_in_the_unit_square_and_a_texture_that_matches_the_vertex_colours(textured):
    assert textured.textured and textured.texture.shape == (128, 128, 3)
    assert textured.num_faces <= 3000
    assert textured.uv.min() >= 0.0 and textured.uv.max() <= 1.0
    # The texel under each vertex's UV is the field's colour near that vertex (x gradient: 1/2 per unit).
    size = 128
    row = np.clip(((1 - textured.uv[:, 1]) * size).astype(int), 0, size - 1)
    col = np.clip((textured.uv[:, 0] * size).astype(int), 0, size - 1)
    at_vertex = textured.texture[row, col].astype(int)
    error = np.abs(at_vertex - textured.colours.astype(int))
    assert error.mean() < 3.0 and np.percentile(error, 99) < 12, (error.mean(), np.percentile(error, 99))
    # Mean foreground (covered texels) against the area-weighted mean vertex colour.
    face, texel, _ = rasterize_uv(textured.uv, textured.faces, size)
    assert 0.2 < len(face) / size**2 < 0.95  # small charts at 128 px: ~26 % covered, the rest gutters
    foreground = textured.texture[texel[:, 0], texel[:, 1]].astype(float).mean(0)
    tri = textured.vertices[textured.faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    weights = np.repeat(area, 3) / (3 * area.sum())
    vertex_mean = (textured.colours[textured.faces.ravel()].astype(float) * weights[:, None]).sum(0)
    np.testing.assert_allclose(foreground, vertex_mean, atol=3.0)
    np.testing.assert_allclose(foreground, [127.5, 64, 191], atol=4.0)  # the field's mean colour on the sphere


def test_textured_glb_and_obj_read_back_with_their_texture(textured, tmp_path):
    import trimesh

    for name in ("asset.glb", "asset.obj"):
        path = save_mesh(textured, tmp_path / name)
        back = trimesh.load(path, force="mesh", process=False)
        assert isinstance(back.visual, trimesh.visual.TextureVisuals), name
        assert len(back.faces) == textured.num_faces
        uv = back.visual.uv
        assert uv.shape == (len(back.vertices), 2) and uv.min() >= 0 and uv.max() <= 1
        image = getattr(back.visual.material, "baseColorTexture", None) or back.visual.material.image
        assert image.size == (128, 128)
        colours = trimesh.visual.uv_to_color(uv, image)[:, :3].astype(int)  # (N, 3) bilinear lookups
        # Same geometry and order as written: compare to the vertex colours directly.
        np.testing.assert_allclose(back.vertices, textured.vertices, atol=1e-5)
        assert np.abs(colours - textured.colours.astype(int)).mean() < 3.0, name
    obj, mtl, png = textured_obj_files(tmp_path / "asset.obj")
    assert png.is_file() and f"map_Kd {png.name}" in mtl.read_text() and "Kd 1 1 1" in mtl.read_text()
    # PLY keeps vertex colours (its readers have no textures).
    ply = trimesh.load(save_mesh(textured, tmp_path / "asset.ply"), process=False)
    np.testing.assert_array_equal(ply.visual.vertex_colors[:, :3], textured.colours)


@pytest.mark.parametrize("colour", ["blue", "orange"])
def test_the_oracle_names_the_colour_from_a_render_of_the_textured_mesh(colour):
    mesh = mesh_from_field(BandedSphere(COLOURS[colour], radius=0.6), CONFIG, max_faces=1500, texture_size=64)
    views = render_textured(mesh, orbit_cameras(2, 20.0, resolution=48))  # (2, 48, 48, 3)
    assert (views.min(-1) < 200).mean() > 0.1  # the object fills part of the frame
    assert AttributeOracle().predict_colours(views[None]) == [colour]


def test_decimation_keeps_at_most_n_faces_the_shape_and_the_colours():
    field = SphereField(radius=0.5, centre=(0.1, -0.2, 0.3))
    full = mesh_from_field(field, MeshConfig(grid=96, sigma_level=50.0))
    config = ChamferConfig(query_points=2000, target_points=20000)
    reported = {}
    for budget in (4000, 1000, 200):
        small = mesh_from_field(field, MeshConfig(grid=96, sigma_level=50.0), max_faces=budget)
        assert budget * 0.9 <= small.num_faces <= budget, (budget, small.num_faces)
        chamfer = mesh_chamfer((small.vertices, small.faces), (full.vertices, full.faces), config, period_deg=0)
        reported[budget] = chamfer.distance
        # Colours are the field's own at the kept vertices.
        expected = np.rint((small.vertices[:, 0] + 1) / 2 * 255)
        assert np.abs(small.colours[:, 0] - expected).max() <= 1
    print(f"Chamfer to the undecimated {full.num_faces}-face sphere: {reported}")
    # Sampling noise alone is ~0.005 here (measured 0.0059 at 4000 faces); 200 faces measured 0.0080.
    assert reported[4000] < 0.008 and reported[200] < 0.012, reported
    assert reported[4000] <= reported[200]


def test_decimation_within_budget_is_a_no_op_and_bad_budgets_are_refused():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.int32)
    out_v, out_f = decimate(v, f, 4)
    assert out_v is v and out_f is f
    with pytest.raises(ValueError, match="max_faces must be >= 4, got 3"):
        decimate(v, f, 3)

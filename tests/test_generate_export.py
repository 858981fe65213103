"""Every mesh format reads back with the same vertices and colours; writes are atomic; bad requests refused."""

from __future__ import annotations

import os

import numpy as np
import pytest
from support.generation import SphereField

from student.mesh.config import MeshConfig
from student.mesh.export import MESH_SUFFIXES, save_mesh
from student.mesh.extract import mesh_from_field
from student.mesh.mesh import Mesh


@pytest.fixture(scope="module")
def sphere_mesh() -> Mesh:
    return mesh_from_field(SphereField(radius=0.6, centre=(0.1, -0.2, 0.3)), MeshConfig(grid=32, sigma_level=50.0))


def test_ply_is_binary_and_reads_back_with_plyfile(tmp_path, sphere_mesh):
    from plyfile import PlyData

    path = save_mesh(sphere_mesh, tmp_path / "a.ply")
    assert path == tmp_path / "a.ply"
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    ply = PlyData.read(str(path))
    v = ply["vertex"].data
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], 1), sphere_mesh.vertices)
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), sphere_mesh.colours)
    np.testing.assert_array_equal(np.stack(ply["face"].data["vertex_indices"]), sphere_mesh.faces)
    header = 15 * sphere_mesh.num_vertices + 13 * sphere_mesh.num_faces
    assert path.stat().st_size - header < 400  # the header; the body is packed, no padding


@pytest.mark.parametrize("suffix", MESH_SUFFIXES)
def test_each_format_reads_back_with_trimesh(tmp_path, sphere_mesh, suffix):
    import trimesh

    path = save_mesh(sphere_mesh, tmp_path / f"a{suffix}")
    loaded = trimesh.load(path, force="mesh", process=False)
    assert len(loaded.vertices) == sphere_mesh.num_vertices
    assert len(loaded.faces) == sphere_mesh.num_faces
    np.testing.assert_allclose(loaded.vertices, sphere_mesh.vertices, atol=1e-5)
    colours = np.asarray(loaded.visual.vertex_colors)[:, :3]
    # OBJ stores colours as floats with limited digits: allow one step of rounding.
    np.testing.assert_allclose(colours.astype(int), sphere_mesh.colours.astype(int), atol=0 if suffix != ".obj" else 1)
    assert len(np.unique(colours[:, 0])) > 10  # a real gradient, not a default colour


def test_suffix_is_case_insensitive_and_unknown_ones_are_listed(tmp_path, sphere_mesh):
    assert save_mesh(sphere_mesh, tmp_path / "A.PLY").is_file()
    with pytest.raises(ValueError, match=r"unknown mesh format '\.stl'.*accepted: \.ply, \.glb, \.obj"):
        save_mesh(sphere_mesh, tmp_path / "a.stl")
    assert not (tmp_path / "a.stl").exists()


def test_an_empty_mesh_is_refused_not_written(tmp_path):
    empty = Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), np.zeros((0, 3), np.uint8))
    with pytest.raises(ValueError, match="empty mesh"):
        save_mesh(empty, tmp_path / "e.ply")
    assert os.listdir(tmp_path) == []


def test_a_failing_write_leaves_neither_the_file_nor_a_temp(tmp_path, sphere_mesh, monkeypatch):
    import student.mesh.export as export

    def broken(mesh):
        raise RuntimeError("encoder crashed")

    monkeypatch.setitem(export._ENCODERS, ".glb", broken)
    with pytest.raises(RuntimeError, match="encoder crashed"):
        save_mesh(sphere_mesh, tmp_path / "a.glb")
    (tmp_path / "b.ply").write_bytes(b"old")
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        save_mesh(sphere_mesh, tmp_path / "b.ply")
    assert os.listdir(tmp_path) == ["b.ply"] and (tmp_path / "b.ply").read_bytes() == b"old"


def test_mesh_validates_its_arrays():
    v = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match="face indices must lie in"):
        Mesh(v, np.array([[0, 1, 3]], np.int32), np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="colours must be uint8"):
        Mesh(v, np.array([[0, 1, 2]], np.int32), np.zeros((3, 3), np.float32))

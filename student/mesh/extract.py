"""Field -> coloured mesh: the level-set surface, optionally decimated, coloured by the decoder, optionally textured."""

from __future__ import annotations

from student.mesh.colours import vertex_colours
from student.mesh.config import MeshConfig
from student.mesh.decimate import decimate
from student.mesh.field import DensityField
from student.mesh.marching_cubes import extract_surface
from student.mesh.mesh import Mesh


def mesh_from_field(
    field: DensityField, config: MeshConfig, max_faces: int | None = None, texture_size: int | None = None
) -> Mesh:
    """Mesh of ``field`` in world units.

    max_faces:    decimate by quadric error to at most this many faces (None = keep all)
    texture_size: also bake the field's colour into a texture this many pixels square (None = vertex colours only)
    """
    vertices, faces = extract_surface(field, config)  # (N, 3) float32, (F, 3) int32
    if max_faces is not None:
        vertices, faces = decimate(vertices, faces, max_faces)
    mesh = Mesh(vertices, faces, vertex_colours(field, vertices, config.chunk))
    if texture_size is not None:
        from student.mesh.texture import bake_texture

        mesh = bake_texture(mesh, field, texture_size, config.chunk)
    return mesh

"""Field -> coloured mesh: the level-set surface, optionally simplified, coloured by the decoder."""

from __future__ import annotations

from student.mesh.colours import vertex_colours
from student.mesh.config import MeshConfig
from student.mesh.field import DensityField
from student.mesh.marching_cubes import extract_surface
from student.mesh.mesh import Mesh
from student.mesh.simplify import simplify_by_clustering


def mesh_from_field(field: DensityField, config: MeshConfig, simplify: int | None = None) -> Mesh:
    """Mesh of ``field`` in world units; ``simplify`` = vertex-clustering resolution (None = keep all)."""
    vertices, faces = extract_surface(field, config)  # (N, 3) float32, (F, 3) int32
    if simplify is not None:
        vertices, faces = simplify_by_clustering(vertices, faces, simplify)
    return Mesh(vertices, faces, vertex_colours(field, vertices, config.chunk))

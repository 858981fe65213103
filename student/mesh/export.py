"""Write a `Mesh` to disk in the format its suffix names; every writer returns the path it wrote.

- ``.ply``: binary little-endian PLY, float32 xyz + uchar RGB per vertex, uchar-counted int32
  triangles. Written straight from numpy structured arrays: one buffer per element, no per-vertex
  loop, and readable by MeshLab, Blender, plyfile and trimesh.
- ``.glb``: binary glTF via trimesh, with a COLOR_0 vertex attribute, or for a textured mesh TEXCOORD_0 and
  the texture as the material's baseColorTexture (PNG inside the file).
- ``.obj``: Wavefront OBJ via trimesh, colours as the common ``v x y z r g b`` extension; a textured mesh
  is written as ``NAME.obj`` with ``vt`` coordinates, ``NAME.mtl`` and ``NAME_texture.png`` beside it.
- PLY has no texture in any viewer that matters, so it always carries the vertex colours.

All writes are atomic (`pipeline.atomic.atomic_write_bytes`), so a failed export leaves no partial file
behind; a textured OBJ writes the texture and the MTL before the OBJ that names them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_write_bytes
from student.mesh.mesh import Mesh


def mesh_to_ply_bytes(mesh: Mesh) -> bytes:
    header = "\n".join(
        [
            "ply",
            "format binary_little_endian 1.0",
            "comment written by et3d-gen (world units, z up)",
            f"element vertex {mesh.num_vertices}",
            "property float x",
            "property float y",
            "property float z",
            "property uchar red",
            "property uchar green",
            "property uchar blue",
            f"element face {mesh.num_faces}",
            "property list uchar int vertex_indices",
            "end_header",
            "",
        ]
    )
    vertex = np.empty(mesh.num_vertices, dtype=[("xyz", "<f4", (3,)), ("rgb", "u1", (3,))])  # 15 bytes a vertex, packed
    vertex["xyz"], vertex["rgb"] = mesh.vertices, mesh.colours
    face = np.empty(mesh.num_faces, dtype=[("n", "u1"), ("idx", "<i4", (3,))])  # 13 bytes a face, packed
    face["n"], face["idx"] = 3, mesh.faces
    return header.encode("ascii") + vertex.tobytes() + face.tobytes()


def _trimesh(mesh: Mesh):
    import trimesh  # ~0.2 s import, paid only for .glb / .obj

    if mesh.textured:
        from PIL import Image

        material = trimesh.visual.material.PBRMaterial(
            baseColorTexture=Image.fromarray(mesh.texture), metallicFactor=0.0, roughnessFactor=1.0
        )
        visual = trimesh.visual.TextureVisuals(uv=mesh.uv, material=material)
        return trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, visual=visual, process=False)
    rgba = np.concatenate([mesh.colours, np.full((mesh.num_vertices, 1), 255, np.uint8)], axis=1)  # (N, 4)
    # process=False: keep vertices exactly as marching cubes produced them (no merging or reordering),
    # so every format holds the same vertex count and order.
    return trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, vertex_colors=rgba, process=False)


def mesh_to_glb_bytes(mesh: Mesh) -> bytes:
    return _trimesh(mesh).export(file_type="glb")


def mesh_to_obj_bytes(mesh: Mesh) -> bytes:
    """Vertex-coloured OBJ; a textured mesh goes through `save_textured_obj` instead (three files)."""
    text = _trimesh(mesh).export(file_type="obj", include_color=True, include_normals=False, include_texture=False)
    return text.encode("utf-8")


_ENCODERS: dict[str, Callable[[Mesh], bytes]] = {
    ".ply": mesh_to_ply_bytes,
    ".glb": mesh_to_glb_bytes,
    ".obj": mesh_to_obj_bytes,
}
MESH_SUFFIXES: tuple[str, ...] = tuple(_ENCODERS)


def check_mesh_suffix(path: str | Path) -> str:
    """The lower-case suffix of ``path`` if it is a mesh format this module writes, else ValueError."""
    suffix = Path(path).suffix.lower()
    if suffix not in _ENCODERS:
        raise ValueError(
            f"unknown mesh format {suffix or '(no suffix)'!r} in {str(path)!r}; accepted: {', '.join(MESH_SUFFIXES)}"
        )
    return suffix


def save_mesh(mesh: Mesh, path: str | Path) -> Path:
    """Write ``mesh`` in the format of ``path``'s suffix, atomically; returns the path written.

    An empty mesh is refused: a file with no faces looks like a success to every viewer.
    """
    suffix = check_mesh_suffix(path)
    if mesh.num_faces == 0:
        raise ValueError(f"refusing to write an empty mesh (0 faces) to {str(path)!r}")
    if suffix == ".obj" and mesh.textured:
        return save_textured_obj(mesh, path)
    return atomic_write_bytes(path, _ENCODERS[suffix](mesh))


def textured_obj_files(path: str | Path) -> tuple[Path, Path, Path]:
    """The OBJ, MTL and texture PNG of a textured OBJ at ``path``: NAME.obj, NAME.mtl, NAME_texture.png."""
    path = Path(path)
    return path, path.with_suffix(".mtl"), path.with_name(f"{path.stem}_texture.png")


def save_textured_obj(mesh: Mesh, path: str | Path) -> Path:
    """OBJ with ``vt`` per vertex, its MTL and the texture PNG; returns the OBJ's path.

    Written by hand rather than by trimesh so that Kd is 1 (viewers multiply map_Kd by Kd; trimesh writes
    0.4, which darkens the texture) and the file names cannot collide with a --preview image.
    """
    import io

    from PIL import Image

    obj, mtl, png = textured_obj_files(path)
    material = obj.stem
    image = io.BytesIO()
    Image.fromarray(mesh.texture).save(image, format="PNG")
    atomic_write_bytes(png, image.getvalue())
    atomic_write_bytes(mtl, f"newmtl {material}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nillum 1\nmap_Kd {png.name}\n".encode())
    body = io.StringIO()
    body.write(f"# written by et3d-gen (world units, z up)\nmtllib {mtl.name}\nusemtl {material}\n")
    np.savetxt(body, mesh.vertices, fmt="v %.6f %.6f %.6f")
    np.savetxt(body, mesh.uv, fmt="vt %.6f %.6f")
    idx = mesh.faces.astype(np.int64) + 1  # OBJ counts from 1; vertex i has texture coordinate i
    np.savetxt(body, np.repeat(idx, 2, axis=1), fmt="f %d/%d %d/%d %d/%d")
    return atomic_write_bytes(obj, body.getvalue().encode("ascii"))

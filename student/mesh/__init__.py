"""Meshes from density fields: grid sampling and marching cubes (`marching_cubes`), vertex colours
(`colours`), optional simplification (`simplify`), the pipeline of the three (`extract`) and writers for
.ply / .glb / .obj (`export`). Any object with a ``query(points) -> (sigma, rgb)`` (`field`) can be meshed.
"""

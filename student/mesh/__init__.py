"""Meshes from density fields: grid sampling and marching cubes (`marching_cubes`), vertex colours
(`colours`), quadric decimation (`decimate`), UV atlases with baked textures (`texture`), the pipeline
of these (`extract`) and writers for .ply / .glb / .obj (`export`). Any object with a
``query(points) -> (sigma, rgb)`` (`field`) can be meshed.
"""

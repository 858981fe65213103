"""Generation: prompt -> tri-planes -> coloured mesh (`api.ET3D`) and its CLI `et3d-gen` (`cli`).

Kept empty of imports so that ``et3d-gen --help`` starts without torch: import ``student.generate.api``.
"""

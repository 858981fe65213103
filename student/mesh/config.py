"""How a density field becomes a mesh: the grid, the density level of the surface and the query size."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.cameras import BOX_HALF


@dataclass(frozen=True)
class MeshConfig:
    """How a density field becomes a mesh.

    grid:          marching-cubes cells per axis over the box (cell = 2 * BOX_HALF / grid world units)
    sigma_level:   density level of the surface, per world unit; None = `default_sigma_level(cell)`
    coarse_stride: fine cells per coarse cell in the first pass (must divide grid; 1 = dense)
    chunk:         points per decoder query (bounds activation memory)
    """

    grid: int = 128
    sigma_level: float | None = None
    coarse_stride: int = 4
    chunk: int = 65536

    def __post_init__(self) -> None:
        if self.grid < 8:
            raise ValueError(f"grid must be >= 8 cells, got {self.grid}")
        if self.coarse_stride < 1 or self.grid % self.coarse_stride:
            raise ValueError(f"coarse_stride must be >= 1 and divide grid={self.grid}, got {self.coarse_stride}")
        if self.sigma_level is not None and not (self.sigma_level > 0 and math.isfinite(self.sigma_level)):
            raise ValueError(f"sigma_level must be a finite density > 0, got {self.sigma_level}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")

    @property
    def cell(self) -> float:
        return 2 * BOX_HALF / self.grid

    @property
    def level(self) -> float:
        return self.sigma_level if self.sigma_level is not None else default_sigma_level(self.cell)


def default_sigma_level(length: float) -> float:
    """The density at which a slab ``length`` world units thick is half opaque: ln 2 / length.

    Alpha compositing gives a slab of density sigma and thickness d the opacity 1 - exp(-sigma d),
    which is 0.5 at sigma = ln 2 / d. Called with the renderer's sample spacing it puts the surface
    where one render sample turns more opaque than transparent, i.e. where the student's images
    show the object's edge; called with the grid cell (the fallback) it is the level where one
    marching-cubes cell is half opaque.
    """
    if not length > 0:
        raise ValueError(f"length must be > 0, got {length}")
    return math.log(2.0) / length

"""Output paths of a generation run: validated before any work starts, numbered when there are many.

Checking up front means a typo in the suffix or directory fails in milliseconds rather than after the
checkpoint load and the forward pass; the writers are atomic besides, so no failure leaves a partial file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from student.generate.errors import OutputPathError
from student.mesh.export import MESH_SUFFIXES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ANIMATION_SUFFIXES = (".gif",)


def check_output_path(path: str | Path, accepted: tuple[str, ...], what: str) -> Path:
    """``path`` as a Path if its suffix is in ``accepted`` and its directory exists and is writable."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in accepted:
        raise OutputPathError(
            f"{what} {str(path)!r}: unknown format {suffix or '(no suffix)'!r}; accepted: {', '.join(accepted)}"
        )
    if path.is_dir():
        raise OutputPathError(f"{what} {str(path)!r} is a directory; give a file name ending in {suffix}")
    parent = path.parent
    if not parent.exists():
        raise OutputPathError(f"{what} {str(path)!r}: directory {str(parent)!r} does not exist (create it first)")
    if not parent.is_dir():
        raise OutputPathError(f"{what} {str(path)!r}: {str(parent)!r} is not a directory")
    if not _can_create_in(parent):
        raise OutputPathError(f"{what} {str(path)!r}: directory {str(parent)!r} is not writable")
    return path


def check_mesh_output(path: str | Path) -> Path:
    return check_output_path(path, MESH_SUFFIXES, "output")


def numbered_paths(path: Path, counts: tuple[int, ...]) -> list[Path]:
    """One path per item of a (prompts x samples) grid, row-major.

    A single item keeps ``path`` itself; otherwise each axis longer than one adds a 3-digit index:
    ``out.ply`` -> ``out_000.ply, out_001.ply, ...`` or ``out_000_000.ply, ...`` for many prompts and samples.
    """
    indices: list[tuple[int, ...]] = [()]
    for n in counts:
        indices = [(*prefix, i) for prefix in indices for i in range(n)] if n > 1 else indices
    if indices == [()]:
        return [path]
    return [path.with_name(path.stem + "".join(f"_{i:03d}" for i in idx) + path.suffix) for idx in indices]


def sibling_path(path: Path, tag: str, suffix: str) -> Path:
    """``out.ply`` + ("strip", ".png") -> ``out_strip.png``."""
    return path.with_name(f"{path.stem}_{tag}{suffix}")


def _can_create_in(directory: Path) -> bool:
    """Probe by creating a file: os.access ignores read-only mounts and ACLs, a real create does not."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False

"""Atomic file and directory writes: write to a temp name beside the target, fsync, rename.

A reader never sees a half-written artefact: either the old file (or nothing) or the complete new
one. Temp names start with ``.tmp-`` so that validators can spot leftovers of a crash.

Modes: while it is written, a temp file is 0600 and a temp directory 0700 whatever the umask (nobody else reads
a half-written artefact). Once complete, and before it takes its final name, it gets the mode an ordinary
`open` or `mkdir` would have given it, 0666 / 0777 less the umask (0644 / 0755 with umask 022), so other
accounts on shared storage (a web server, Ray workers under another user) read finished artefacts as the
umask allows; every file and folder inside an atomic directory gets the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (`/proc/self/status`, kernel >= 4.7);
    elsewhere it is set and restored at once (os.umask can only be read by setting it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _finish_modes(path: Path) -> None:
    """Give a complete temp file (or directory, with everything in it) the modes the umask asks for."""
    umask = current_umask()
    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    if path.is_dir():
        for inner in path.rglob("*"):
            if not inner.is_symlink():
                os.chmod(inner, dir_mode if inner.is_dir() else file_mode)
        os.chmod(path, dir_mode)
    else:
        os.chmod(path, file_mode)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write `data` to `path` atomically (creating its folder) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
    with _removed_on_failure(tmp):
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _finish_modes(Path(tmp))
        os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


@contextlib.contextmanager
def _removed_on_failure(tmp: str) -> Iterator[None]:
    """Delete the temp file `tmp` if the block raises (a crash leaves no half-written file behind)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, obj: object) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a private temp file path beside `path`; on success it is fsynced and renamed onto `path`.

    For writers that insist on a file name (PIL, imageio, trimesh): ``with atomic_path(p) as tmp: img.save(tmp)``.
    The temp name keeps the target's suffix so that format detection by suffix still works.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    with _removed_on_failure(tmp):
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _finish_modes(Path(tmp))
        os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield a private temp directory beside `path`; on success every file in it is fsynced and the
    directory renamed onto `path` (an existing `path` is replaced). On failure it is removed."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent))
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        _finish_modes(tmp)
        if path.exists():
            old = path.with_name(f"{TMP_PREFIX}old-{path.name}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(path.parent)

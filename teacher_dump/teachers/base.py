"""The teacher interface and its name -> class registry.

A teacher maps a batch of (prompt, seed) pairs to V views each, with the cameras (in the shared
convention of `pipeline.cameras`) the views were made with. It is built once per dump worker and
called on many batches, so loading happens in the constructor and `generate` is pure compute.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TeacherOutput:
    """What a teacher returns for B (prompt, seed) pairs.

    views:   (B, V, H, W, 3) uint8 RGB, white background
    cameras: (B, V, 4, 4) float32 camera-to-world at the render radius (world frame z up)
    fovy:    (B, V) float32 vertical field of view in degrees
    """

    views: np.ndarray
    cameras: np.ndarray
    fovy: np.ndarray

    def __post_init__(self) -> None:
        b, v = self.views.shape[:2]
        if self.views.dtype != np.uint8 or self.views.ndim != 5 or self.views.shape[-1] != 3:
            raise ValueError(f"views must be uint8 (B, V, H, W, 3), got {self.views.dtype} {self.views.shape}")
        if self.cameras.shape != (b, v, 4, 4):
            raise ValueError(f"cameras must be ({b}, {v}, 4, 4), got {self.cameras.shape}")
        if self.fovy.shape != (b, v):
            raise ValueError(f"fovy must be ({b}, {v}), got {self.fovy.shape}")


class Teacher(ABC):
    """Base class of every teacher. Subclasses set `name` and implement `generate` and `config`."""

    name: str = ""

    @abstractmethod
    def config(self) -> dict:
        """JSON-serialisable settings that change the teacher's output (recorded in every shard)."""

    def config_hash(self) -> str:
        """First 12 hex of sha256 over the canonical JSON of `config()`."""
        blob = json.dumps({"teacher": self.name, **self.config()}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def camera_distribution(self) -> dict | None:
        """``{"elevation_range": [lo, hi], "radius": r, "fovy_deg": f}`` the cameras are drawn from, recorded in
        `dataset.json` for the trainer; None (the default) leaves the trainer to measure it from the shards."""
        return None

    def validate_prompts(self, prompts: list[str]) -> None:  # noqa: B027 - optional hook
        """Raise ValueError naming every prompt this teacher cannot render (default: accepts all)."""

    @abstractmethod
    def generate(self, prompts: list[str], seeds: list[int]) -> TeacherOutput:
        """Views for each (prompt, seed); deterministic in (prompt, seed) and independent of batching."""


_REGISTRY: dict[str, type[Teacher]] = {}
_HIDDEN: set[str] = set()  # built by name like any other, never listed to users (the tests' stand-in)


def register_teacher(name: str, *, hidden: bool = False) -> Callable[[type[Teacher]], type[Teacher]]:
    """Register a teacher class under `name`; a `hidden` one is left out of listings, help and errors."""

    def deco(cls: type[Teacher]) -> type[Teacher]:
        if name in _REGISTRY:
            raise ValueError(f"teacher {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        if hidden:
            _HIDDEN.add(name)
        return cls

    return deco


def available_teachers() -> list[str]:
    """The teachers a user may choose, sorted (hidden ones left out)."""
    _import_builtin_teachers()
    return sorted(set(_REGISTRY) - _HIDDEN)


def teacher_class(name: str) -> type[Teacher]:
    """The class registered under `name` (read its `uses_gpu` without building it); unknown names list what is available."""
    _import_builtin_teachers()
    if name not in _REGISTRY:
        raise ValueError(f"unknown teacher {name!r}; available: {', '.join(available_teachers())}")
    return _REGISTRY[name]


def build_teacher(name: str, **kwargs) -> Teacher:
    """Build a registered teacher by name; unknown names list what is available."""
    return teacher_class(name)(**kwargs)


def _import_builtin_teachers() -> None:
    # Imported lazily so that `procedural` never pays for diffusers and `mvdream` only loads on demand.
    import importlib

    for module in ("procedural", "mvdream", "fake"):
        try:
            importlib.import_module(f"teacher_dump.teachers.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"teacher_dump.teachers.{module}":
                raise

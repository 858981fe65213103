"""A cheap stand-in teacher for tests of the dump: flat-coloured views, and failures on demand.

Each (prompt, seed) gets a colour from a hash of both and a disc drawn in it on white, seen from an
MVDream-layout orbit. `poison` names a prompt the teacher fails on, to exercise retries and
failure reports: `crash="raise"` raises in `generate`, `crash="exit"` kills the worker process (a dead
actor). With `poison_marker` set, the failure happens only while that file does not exist and the
teacher creates it when failing, so the first attempt fails and the retry (even in a restarted
process) succeeds.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.cameras import DEFAULT_FOVY_DEG, orbit_cameras
from teacher_dump.teachers.base import Teacher, TeacherOutput, register_teacher


@dataclass(frozen=True)
class FakeTeacherConfig:
    num_views: int = 4
    resolution: int = 16
    poison: str = ""  # a prompt to fail on ("" fails on none)
    crash: str = "raise"  # "raise": exception in generate; "exit": the process dies
    poison_marker: str = ""  # fail only while this file is missing (and create it when failing)
    delay_s: float = 0.0  # sleep per sample, to make a dump slow enough to interrupt in a test

    def __post_init__(self) -> None:
        if self.crash not in ("raise", "exit"):
            raise ValueError(f"crash must be 'raise' or 'exit', got {self.crash!r}")
        if self.num_views < 1 or self.resolution < 1:
            raise ValueError(f"num_views and resolution must be >= 1, got {self}")


@register_teacher("fake", hidden=True)  # a test stand-in: reachable by name, not listed
class FakeTeacher(Teacher):
    uses_gpu = False

    def __init__(self, **options: object):
        """Options are the fields of `FakeTeacherConfig`; unknown names raise TypeError."""
        self.cfg = FakeTeacherConfig(**options)

    def config(self) -> dict:
        # Failure injection does not change any output, so it stays out of the config hash.
        return {"num_views": self.cfg.num_views, "resolution": self.cfg.resolution}

    def _maybe_fail(self, prompt: str) -> None:
        if not self.cfg.poison or prompt != self.cfg.poison:
            return
        if self.cfg.poison_marker:
            marker = Path(self.cfg.poison_marker)
            if marker.exists():
                return
            marker.touch()
        if self.cfg.crash == "exit":
            os._exit(3)
        raise RuntimeError(f"fake teacher poisoned by prompt {prompt!r}")

    def generate(self, prompts: list[str], seeds: list[int]) -> TeacherOutput:
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        v, r = self.cfg.num_views, self.cfg.resolution
        yy, xx = np.mgrid[0:r, 0:r]
        disc = (xx - r / 2 + 0.5) ** 2 + (yy - r / 2 + 0.5) ** 2 < (r / 3) ** 2  # (H, W)
        views = np.full((len(prompts), v, r, r, 3), 255, dtype=np.uint8)
        cameras = np.empty((len(prompts), v, 4, 4), dtype=np.float32)
        for i, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True)):
            self._maybe_fail(prompt)
            time.sleep(self.cfg.delay_s)
            digest = hashlib.sha256(f"{prompt}|{seed}".encode()).digest()
            views[i][:, disc] = np.frombuffer(digest[:3], dtype=np.uint8) // 2  # darker than white
            cams = orbit_cameras(
                v, elevation_deg=digest[3] / 255 * 30, azimuth_start_deg=digest[4] / 255 * 360, resolution=r
            )
            cameras[i] = cams.c2w.numpy()
        return TeacherOutput(
            views=views, cameras=cameras, fovy=np.full((len(prompts), v), DEFAULT_FOVY_DEG, dtype=np.float32)
        )
